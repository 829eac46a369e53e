"""Read endpoints of the Deployments API. Deployment rows already have Nomad's shape
and are served as stored."""
from __future__ import annotations

from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.server.http.alloc_reads import GET, by_creation, listed, require_uuid, stub
from caravan.server.http.common import blocking_read, check_method, query_options, read_row


async def list_deployments(request: Request):
    check_method(request, GET)
    prefix = query_options(request).prefix

    def query(state: State):
        return state.table_index(t.DEPLOYMENTS), listed(state, t.DEPLOYMENTS, prefix)

    return await blocking_read(request, (t.DEPLOYMENTS,), query)


async def read_deployment(request: Request):
    check_method(request, GET)
    deployment_id = require_uuid(request.path_params["deployment_id"])
    return await read_row(request, t.DEPLOYMENTS, deployment_id, "deployment not found")


async def deployment_allocations(request: Request):
    """Stubs of the deployment's allocations; an unknown deployment has none (``[]``),
    as in Nomad."""
    check_method(request, GET)
    deployment_id = request.path_params["deployment_id"]

    def query(state: State):
        allocs = by_creation(state.by_index(t.ALLOCS, t.BY_DEPLOYMENT, deployment_id))
        return state.table_index(t.ALLOCS), [stub(a) for a in allocs]

    return await blocking_read(request, (t.ALLOCS,), query)
