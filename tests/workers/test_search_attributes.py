"""A second worker against the same Temporal finds the search attributes there and goes on."""

from __future__ import annotations

from workers.client import register_search_attributes


async def test_registering_the_search_attributes_again_is_a_no_op(time_skipping):
    # The session's fixture registered them once already; the test server cannot list them.
    await register_search_attributes(time_skipping.client)
    await register_search_attributes(time_skipping.client)
