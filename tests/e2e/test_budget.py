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


INTERVAL = round(1e6 / BUDGET)


def slots_taken(add: dict) -> int:
    """How many consecutive slots one ADD took: its interval over the budget's
    (the calls of one process waiting together take theirs in one ADD)."""
    added = int(add["Params"]["ExpressionAttributeValues"][":interval"]["N"])
    assert added % INTERVAL == 0 and added > 0, add["Params"]
    return added // INTERVAL


def test_every_iam_attempt_took_a_slot_of_the_shared_schedule(paced):
    _, _, calls = paced
    iam = function_calls(calls, "iam")
    adds = [c for c in function_calls(calls, "dynamodb")
            if c["Action"] == "UpdateItem" and c["Params"]["UpdateExpression"].startswith("ADD")]
    assert iam, "the offboardings called IAM"
    taken = sum(slots_taken(add) for add in adds)
    assert taken >= len(iam), f"{taken} slots taken for {len(iam)} IAM calls"
    assert len(adds) < len(iam), "calls waiting together took their slots in one UpdateItem"
    by_key: dict[str, int] = {}
    for call in sorted(iam + adds, key=lambda c: c["Time"]):
        key = call["AccessKeyId"]
        by_key[key] = by_key.get(key, 0) + (slots_taken(call) if call["Service"] == "dynamodb" else -1)
        assert by_key[key] >= 0, f"an IAM call of {key} went before its function took a slot"


def granted_slots(calls: list[dict]) -> list[int]:
    """The slots (µs since the epoch) the schedule handed out, read from
    DynamoDB's answers as take_slots reads them: an ADD of k intervals whose
    new NextCallAtMicros is N hands out the k slots N - k·i, ..., N - i, unless
    the caller found them stale and moved the schedule with a conditional SET
    naming that very N (`:seen`); a SET that succeeded hands out the same
    number of slots ending at its `:caught_up`."""
    updates = [c for c in function_calls(calls, "dynamodb") if c["Action"] == "UpdateItem"]
    adds = [c for c in updates if c["Params"]["UpdateExpression"].startswith("ADD")]
    moves = [c for c in updates if c["Params"]["UpdateExpression"].startswith("SET")]
    assert len(adds) + len(moves) == len(updates) and all(c["Status"] == 200 for c in adds), "every slot was taken"
    ends = {int(c["Response"]["Attributes"]["NextCallAtMicros"]["N"]): slots_taken(c) for c in adds}
    seen = {int(c["Params"]["ExpressionAttributeValues"][":seen"]["N"]) for c in moves}
    granted = [(end, count) for end, count in ends.items() if end not in seen]
    granted += [(int(c["Params"]["ExpressionAttributeValues"][":caught_up"]["N"]),
                 ends[int(c["Params"]["ExpressionAttributeValues"][":seen"]["N"])]) for c in moves if c["Status"] == 200]
    return sorted(end - k * INTERVAL for end, count in granted for k in range(1, count + 1))


def test_the_deployment_never_asked_iam_for_more_than_its_budget(paced):
    """The budget's promise, stated on what the deployment controls: the slots
    it hands out are at least 1/BUDGET s apart, and no IAM call is sent before
    a slot is due. So the k-th IAM call to arrive came no earlier than the k-th
    slot. (A call may arrive later than its slot, e.g. while the two-core
    machine is busy; calls held up that way can arrive close together, which is
    why the rate is not asserted on arrival times in short windows.)"""
    _, _, calls = paced
    slots = granted_slots(calls)
    arrivals = sorted(round(c["Time"] * 1e6) for c in function_calls(calls, "iam"))
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:])]
    assert min(gaps) >= INTERVAL, f"two slots {min(gaps)} µs apart under a budget of {BUDGET}/s"
    assert len(slots) >= len(arrivals), f"{len(slots)} slots for {len(arrivals)} IAM calls"
    early = [(k, slot - arrival) for k, (slot, arrival) in enumerate(zip(slots, arrivals)) if arrival < slot]
    assert not early, f"IAM calls arrived before the schedule allowed them (call index, µs early): {early[:5]}"


def test_the_schedule_lives_in_one_item_of_the_budget_table(paced):
    stack, _, _ = paced
    import boto3

    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=BUDGET_TABLE)["Items"]
    assert [item["Budget"]["S"] for item in items] == ["iam-calls"]
    assert int(items[0]["NextCallAtMicros"]["N"]) > 0


def test_member_accounts_calls_take_slots_of_their_own_schedule_in_the_deployments_table(paced):
    """An org-wide offboarding under the budget: every IAM call made in a member
    account (with that account's target-role session) first took a slot of that
    account's own schedule, `iam-calls#<account>`, and every slot was taken with
    the deployment's own credentials, which reach the table; a member account's
    role cannot (moto keeps DynamoDB per account, as AWS does, so a slot asked
    with the member's credentials finds no table there)."""
    from stack import ACCOUNT, TARGET_ROLE_NAME

    members = ("111111111111", "222222222222")
    stack, _, _ = paced
    stack.restart_lambdas(env={**stack.env, "OFFBOARD_TARGET_ROLE_NAME": TARGET_ROLE_NAME})
    # The same stack, its functions now naming the target roles.
    for account in members:
        stack.deploy_target_roles(account)
        seed_user(stack.iam_in(account), "mira", access_keys=1, ssh_keys=0, certificates=0, services=(),
                  virtual_devices=1, passkeys=0, hardware_tokens=0, groups=1, inline_policies=0,
                  attached_policies=1, boundary=False)
    stack.clear_calls()
    logged = {path: path.stat().st_size for path in stack.lambdas.log_dir.glob("*.log")}
    execution = stack.run({"UserName": "mira", "Accounts": list(members)}, name="mira-everywhere")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    calls = stack.calls()
    logs = "".join(path.read_bytes()[logged.get(path, 0):].decode(errors="replace")
                   for path in stack.lambdas.log_dir.glob("*.log"))
    updates = [c for c in calls if c["Service"] == "dynamodb" and c["Action"] == "UpdateItem"]
    assert updates and {c["Account"] for c in updates} == {ACCOUNT}, "every slot asked with the deployment's credentials"
    adds = [c for c in updates if c["Params"]["UpdateExpression"].startswith("ADD")]
    assert all(c["Status"] == 200 for c in adds), "the table handed out every slot"
    for account in members:
        in_account = [c for c in calls if c["Service"] == "iam" and c["Account"] == account]
        own = [c for c in adds if c["Params"]["Key"]["Budget"]["S"] == f"iam-calls#{account}"]
        assert in_account, f"the offboarding worked in {account}"
        taken = sum(slots_taken(add) for add in own)
        assert taken >= len(in_account), f"{account}: {taken} slots for {len(in_account)} IAM calls"
    assert "IAM budget unavailable" not in logs, "no call went unpaced"
