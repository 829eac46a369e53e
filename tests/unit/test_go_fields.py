"""Request keys matched to fields as Go's encoding/json matches them."""
from caravan.server.http.common import go_fields

FIELDS = ("DeploymentID", "HealthyAllocationIDs", "UnhealthyAllocationIDs")


def test_keys_match_fields_in_any_case():
    body = {"deploymentid": "d", "UnHealthyAllocationIDs": ["a"], "HEALTHYALLOCATIONIDS": ["b"]}
    assert go_fields(body, FIELDS) == {
        "DeploymentID": "d", "UnhealthyAllocationIDs": ["a"], "HealthyAllocationIDs": ["b"]}


def test_the_later_of_two_keys_for_one_field_wins():
    assert go_fields({"UnhealthyAllocationIDs": ["a"], "UnHealthyAllocationIDs": ["b"]},
                     FIELDS) == {"UnhealthyAllocationIDs": ["b"]}
    assert go_fields({"UnHealthyAllocationIDs": ["b"], "UnhealthyAllocationIDs": ["a"]},
                     FIELDS) == {"UnhealthyAllocationIDs": ["a"]}


def test_other_keys_are_left_alone():
    assert go_fields({"idempotency_token": "x", "DeploymentID": "d"}, FIELDS) == \
        {"idempotency_token": "x", "DeploymentID": "d"}
