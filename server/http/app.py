"""The HTTP gateway: the route list and the one error path.

Routes are an explicit list. Everything under ``/v1/job/`` is dispatched by known
suffix after percent-decoding, as Nomad does, so job IDs may contain ``/`` (dispatched
and periodic children do) and any other character, newlines included.
"""
from __future__ import annotations

import functools
import logging

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from caravan.fsm.submit import EntryRejected
from caravan.server.http import (
    alloc_reads,
    alloc_writes,
    client_fs,
    deployment_reads,
    deployment_writes,
    eval_reads,
    job_parse,
    node_reads,
    node_writes,
    scale,
    status,
    system,
)
from caravan.server.http import job_reads as r
from caravan.server.http import job_writes as w
from caravan.server.http.common import WRITE_METHODS, ApiError, check_method
from caravan.server.raft import ApplyTimeout, NoLeaderError

log = logging.getLogger("caravan.http")

ALL_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]


class _AnyPath(Convertor):
    """Like starlette's ``path`` convertor, but also across newlines."""
    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())

# (suffix, allowed methods, handler) in Nomad's matching order.
_JOB_SUFFIXES = (
    ("/evaluate", WRITE_METHODS, w.evaluate),
    ("/allocations", ("GET",), r.job_allocations),
    ("/evaluations", ("GET",), r.job_evaluations),
    ("/periodic/force", WRITE_METHODS, w.periodic_force),
    ("/plan", WRITE_METHODS, w.plan),
    ("/summary", ("GET",), r.job_summary),
    ("/dispatch", WRITE_METHODS, w.dispatch),
    ("/versions", ("GET",), r.job_versions),
    ("/revert", WRITE_METHODS, w.revert),
    ("/deployments", ("GET",), r.job_deployments),
    ("/deployment", ("GET",), r.job_latest_deployment),
    ("/stable", WRITE_METHODS, w.stable),
    ("/scale", ("GET", *WRITE_METHODS), scale.job_scale),
)


async def jobs_collection(request: Request):
    if request.method == "GET":
        return await r.list_jobs(request)
    check_method(request, WRITE_METHODS)
    return await w.register(request)


# The last path segment picks the candidate suffix, so a request costs one dict lookup
# instead of a scan of every suffix.
_BY_LAST_SEGMENT = {suffix.rsplit("/", 1)[1]: (suffix, methods, handler)
                    for suffix, methods, handler in _JOB_SUFFIXES}


async def job_item(request: Request):
    rest = request.path_params["rest"]
    hit = _BY_LAST_SEGMENT.get(rest.rsplit("/", 1)[-1])
    if hit is not None and rest.endswith(hit[0]):
        suffix, methods, handler = hit
        job_id = rest[: -len(suffix)]
        if not job_id:
            raise ApiError(400, "Missing job ID")
        check_method(request, methods)
        return await handler(request, job_id)
    if not rest:
        raise ApiError(400, "Missing job ID")
    if request.method == "GET":
        return await r.read_job(request, rest)
    if request.method == "DELETE":
        return await w.deregister(request, rest)
    check_method(request, WRITE_METHODS)
    return await w.register(request, rest)


async def validate_job(request: Request):
    check_method(request, WRITE_METHODS)
    return await w.validate(request)


def _guarded(handler):
    """Answer an unexpected exception here, as a 500, instead of in starlette's
    ServerErrorMiddleware: that one re-raises after responding, and uvicorn then drops
    the connection, so a keep-alive client's next request fails with a reset."""
    @functools.wraps(handler)
    async def endpoint(request: Request):
        try:
            return await handler(request)
        except (ApiError, EntryRejected, HTTPException, NoLeaderError, ApplyTimeout):
            raise
        except Exception as exc:
            return await _fault(request, exc)
    return endpoint


ROUTES = [
    Route("/v1/jobs", _guarded(jobs_collection), methods=ALL_METHODS),
    Route("/v1/jobs/parse", _guarded(job_parse.parse), methods=ALL_METHODS),
    Route("/v1/job/{rest:anypath}", _guarded(job_item), methods=ALL_METHODS),
    Route("/v1/validate/job", _guarded(validate_job), methods=ALL_METHODS),
    Route("/v1/status/leader", _guarded(status.leader), methods=ALL_METHODS),
    Route("/v1/status/peers", _guarded(status.peers), methods=ALL_METHODS),
    Route("/v1/status/state-digest", _guarded(status.state_digest), methods=ALL_METHODS),
    Route("/v1/agent/health", _guarded(status.health), methods=ALL_METHODS),
    Route("/v1/agent/members", _guarded(status.members), methods=ALL_METHODS),
    Route("/v1/metrics", _guarded(status.metrics), methods=["GET"]),
    Route("/v1/system/gc", _guarded(system.garbage_collect), methods=ALL_METHODS),
    Route("/v1/nodes", _guarded(node_reads.list_nodes), methods=ALL_METHODS),
    Route("/v1/node/{node_id}/allocations", _guarded(node_reads.node_allocations),
          methods=ALL_METHODS),
    Route("/v1/node/{node_id}/drain", _guarded(node_writes.drain), methods=ALL_METHODS),
    Route("/v1/node/{node_id}/eligibility", _guarded(node_writes.eligibility),
          methods=ALL_METHODS),
    Route("/v1/node/{node_id}/evaluate", _guarded(node_writes.evaluate), methods=ALL_METHODS),
    Route("/v1/node/{node_id}/purge", _guarded(node_writes.purge), methods=ALL_METHODS),
    Route("/v1/node/{node_id}", _guarded(node_reads.read_node), methods=ALL_METHODS),
    Route("/v1/allocations", _guarded(alloc_reads.list_allocs), methods=ALL_METHODS),
    Route("/v1/allocation/{alloc_id}/stop", _guarded(alloc_writes.stop_alloc),
          methods=ALL_METHODS),
    Route("/v1/allocation/{alloc_id}", _guarded(alloc_reads.read_alloc), methods=ALL_METHODS),
    Route("/v1/evaluations", _guarded(eval_reads.evals_collection), methods=ALL_METHODS),
    Route("/v1/evaluation/{eval_id}/allocations", _guarded(eval_reads.eval_allocations),
          methods=ALL_METHODS),
    Route("/v1/evaluation/{eval_id}", _guarded(eval_reads.read_eval), methods=ALL_METHODS),
    Route("/v1/client/fs/logs/{alloc_id}", _guarded(client_fs.alloc_logs), methods=["GET"]),
    Route("/v1/deployments", _guarded(deployment_reads.list_deployments), methods=ALL_METHODS),
    Route("/v1/deployment/allocations/{deployment_id}",
          _guarded(deployment_reads.deployment_allocations), methods=ALL_METHODS),
    Route("/v1/deployment/promote/{deployment_id}", _guarded(deployment_writes.promote),
          methods=ALL_METHODS),
    Route("/v1/deployment/fail/{deployment_id}", _guarded(deployment_writes.fail),
          methods=ALL_METHODS),
    Route("/v1/deployment/pause/{deployment_id}", _guarded(deployment_writes.pause),
          methods=ALL_METHODS),
    Route("/v1/deployment/allocation-health/{deployment_id}",
          _guarded(deployment_writes.allocation_health), methods=ALL_METHODS),
    Route("/v1/deployment/{deployment_id}", _guarded(deployment_reads.read_deployment),
          methods=ALL_METHODS),
    Route("/v1/scaling/policies", _guarded(scale.list_policies), methods=ALL_METHODS),
    Route("/v1/scaling/policy/{policy_id}", _guarded(scale.read_policy), methods=ALL_METHODS),
]


def _text(code: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=code)


async def _api_error(request: Request, exc: ApiError):
    return _text(exc.code, exc.message)


async def _http_error(request: Request, exc: HTTPException):
    return _text(exc.status_code, exc.detail or "")


async def _rejected(request: Request, exc: EntryRejected):
    return _text(exc.code, exc.message)


async def _no_leader(request: Request, exc: NoLeaderError):
    return _text(500, "No cluster leader")


async def _timeout(request: Request, exc: ApplyTimeout):
    return _text(503, str(exc))


async def _fault(request: Request, exc: Exception):
    log.exception("unhandled error serving %s %s", request.method, request.url.path)
    return _text(500, "internal server error")


def build_app(agent, lifespan=None) -> Starlette:
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={
        ApiError: _api_error, EntryRejected: _rejected, HTTPException: _http_error,
        NoLeaderError: _no_leader, ApplyTimeout: _timeout, Exception: _fault})
    app.state.agent = agent
    return app
