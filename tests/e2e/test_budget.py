"""The deployment's IAM budget end to end (issue 13): offboardings started at
once through the real state machine and the real binaries, every function
sharing one schedule in DynamoDB (crates/core/src/budget.rs).

What the local stack does here, and where it comes from:
- DynamoDB is moto's, behind the same local server as IAM. The budget relies on
  UpdateItem's documented behaviour only: "ADD - ... If the existing attribute is
  a number, and if Value is also a number, then Value is mathematically added to
  the existing attribute. ... If no item matches the specified primary key ... a
  new item ... is created", with ReturnValues UPDATED_NEW returning "only the
  updated attributes, as they appear after the UpdateItem operation"; and a
  failed ConditionExpression is ConditionalCheckFailedException (Amazon DynamoDB
  API Reference, UpdateItem,
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html).
- IAM throttling (400 Throttling "Rate exceeded") and the call log, with each
  call's arrival time: tests/emulator/emulator.py.

No assertion here is a speed: the budget is a ceiling, and a slow machine only
stays further under it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from lambda_host import FUNCTIONS, access_key_for  # noqa: E402
from seed import leftovers, seed_user  # noqa: E402
from stack import BUDGET_TABLE, Stack  # noqa: E402

BUDGET = 8.0
USERS = [f"paced{i}" for i in range(5)]
FUNCTION_KEYS = {access_key_for(stage) for stage in FUNCTIONS}


@pytest.fixture(scope="module")
def paced():
    """Five offboardings started at once under a budget of 8 IAM calls/s, with
    IAM's own bucket at 40/s so that only the budget can hold the rate down."""
    with Stack(instances=2, iam_budget=BUDGET) as stack:
        for name in USERS:
            seed_user(stack.iam, name, access_keys=1, ssh_keys=1, certificates=0, services=("bedrock.amazonaws.com",),
                      virtual_devices=1, passkeys=0, hardware_tokens=0, groups=1, inline_policies=1,
                      attached_policies=1, boundary=False)
        stack.clear_calls()
        stack.faults(RequestsPerSecond=40)
        arns = [stack.start({"UserName": name}, name=name) for name in USERS]
        outcomes = {name: stack.wait(arn, timeout=600)["status"] for name, arn in zip(USERS, arns)}
        stack.faults()
        yield stack, outcomes, stack.calls()


def function_calls(calls: list[dict], service: str) -> list[dict]:
    return [c for c in calls if c["Service"] == service and c["AccessKeyId"] in FUNCTION_KEYS]


def test_every_offboarding_completes_under_the_budget(paced):
    stack, outcomes, calls = paced
    assert outcomes == {name: "SUCCEEDED" for name in USERS}
    assert {name: leftovers(stack.iam, name) for name in USERS} == {name: {} for name in USERS}
    assert not [c for c in calls if c["Injected"]], "nothing was throttled: the calls waited their turn instead"


def test_every_iam_attempt_took_a_slot_of_the_shared_schedule(paced):
    _, _, calls = paced
    iam = function_calls(calls, "iam")
    slots = [c for c in function_calls(calls, "dynamodb")
             if c["Action"] == "UpdateItem" and "ADD" in str(c["Params"].get("UpdateExpression", c["Params"]))]
    assert iam, "the offboardings called IAM"
    assert len(slots) >= len(iam), f"{len(slots)} slots taken for {len(iam)} IAM calls"
    by_key: dict[str, int] = {}
    for call in sorted(function_calls(calls, "iam") + slots, key=lambda c: c["Time"]):
        key = call["AccessKeyId"]
        by_key[key] = by_key.get(key, 0) + (1 if call["Service"] == "dynamodb" else -1)
        assert by_key[key] >= 0, f"an IAM call of {key} went before its function took a slot"


def test_the_deployment_never_asked_iam_for_more_than_its_budget(paced):
    _, _, calls = paced
    times = sorted(c["Time"] for c in function_calls(calls, "iam"))
    window = 4.0
    busiest = max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))
    # Slots are 1/BUDGET s apart. A window can hold one slot more than its
    # length allows, one more for a slot used up to budget.LATE_SLOT_TOLERANCE
    # late, and the emulator stamps a call when it handles it, so on a loaded
    # two-core machine calls whose slots lie just before the window can be
    # stamped inside it (one more).
    assert busiest <= BUDGET * window + 3, f"{busiest} IAM calls within {window} s under a budget of {BUDGET}/s"
    span = times[-1] - times[0]
    assert (len(times) - 1) / span <= BUDGET * 1.05, f"{len(times)} calls in {span:.1f} s"


def test_the_schedule_lives_in_one_item_of_the_budget_table(paced):
    stack, _, _ = paced
    import boto3

    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=BUDGET_TABLE)["Items"]
    assert [item["Budget"]["S"] for item in items] == ["iam-calls"]
    assert int(items[0]["NextCallAtMicros"]["N"]) > 0
