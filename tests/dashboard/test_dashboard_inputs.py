"""Hostile input to every dashboard page and form: any text, any size, gets a page or a 4xx, never a 500, and
every value is shown escaped; on SQLite, then on PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote

from dashboard_support import Dashboard, csrf_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BOTH_ENGINES = True
PROBE = "<x-probe onload=alert(1)>"  # markup no template writes: seen raw, something was not escaped
# Any text a URL or a form can carry (lone surrogates cannot be encoded), short, long, or hostile.
VALUES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=50),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=3000, max_size=6000),
    st.sampled_from(["", " ", "0", "-1", "²", "١٢٣", "9" * 40, "1e400", "nan", "inf~1", "1~" + "9" * 30, "1.5~abc",
                     "+49 151 1111-1111", "\x00", "%", "_", "\\", "'", '"', "zz", PROBE]),
).map(lambda text: text if len(text) % 3 else text + PROBE)
SETTINGS = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _answered(status: int, page: str) -> None:
    assert status < 500, page[-2000:]
    assert PROBE not in page


async def _get(ui: Dashboard, path: str, params: dict[str, str]) -> tuple[int, str]:
    async with ui.session.get(ui.url + path, params=params) as response:
        return response.status, await response.text()


@SETTINGS
@given(fields=st.fixed_dictionaries({}, optional=dict.fromkeys(
    ("q", "direction", "status", "device", "from", "to", "before", "after"), VALUES)))
async def test_any_search_filter_or_cursor_on_the_messages_list(ui: Dashboard, fields: dict[str, str]):
    """The messages list answers any search term, filter and keyset cursor with a page or a 4xx."""
    _answered(*await _get(ui, "/ui/messages", fields))


@SETTINGS
@given(cursor=VALUES, target=VALUES, state=VALUES)
async def test_any_cursor_or_filter_on_the_other_lists(ui: Dashboard, cursor: str, target: str, state: str):
    """Sends, deliveries and opt-outs answer any cursor and filter with a page or a 4xx."""
    for path, params in (("/ui/sends", {"before": cursor}), ("/ui/sends", {"after": cursor}),
                         ("/ui/deliveries", {"target": target, "state": state, "before": cursor}),
                         ("/ui/opt-outs", {"after": cursor})):
        _answered(*await _get(ui, path, params))


@SETTINGS
@given(value=VALUES)
async def test_any_sms_id_or_thread_number_in_the_path(ui: Dashboard, value: str):
    """An SMS page and a thread answer any id or number in their path with a page or a 4xx."""
    quoted = quote(value, safe="")
    for path in (f"/ui/messages/{quoted}", f"/ui/threads/{quoted}"):
        if quoted:
            _answered(*await _get(ui, path, {}))


@SETTINGS
@given(number=VALUES, action=st.sampled_from(["add", "remove", "", "other"]))
async def test_any_number_in_the_opt_out_form(ui: Dashboard, number: str, action: str):
    """The opt-out form answers any number with a page or a 4xx, and the list still shows."""
    _answered(*await ui.post("/ui/opt-outs", {"number": number, "action": action}))
    _answered(*await _get(ui, "/ui/opt-outs", {}))


@SETTINGS
@given(fields=st.fixed_dictionaries({}, optional=dict.fromkeys(
    ("event", "from", "to", "body", "status", "sms_id", "device_id"), VALUES)))
async def test_any_rules_dry_run_form(ui: Dashboard, fields: dict[str, str]):
    """The rules dry run answers any form with a page or a 4xx, the values shown escaped."""
    _, form = await _get(ui, "/ui/rules", {})
    async with ui.session.post(ui.url + "/ui/rules", data={"csrf_token": csrf_of(form), **fields}) as response:
        _answered(response.status, await response.text())
