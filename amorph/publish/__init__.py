"""Publishing the results database to an MPContribs project (``amorph publish``).

What is published
    One contribution per composition and temperature (one stage document in the store),
    identified by ``<reduced formula>-<T>K-<engine>`` (e.g. ``Li3PO4-1500K-chgnet``), so that a
    re-run finds what the server already has. :mod:`amorph.publish.contributions` lists the data
    keys, units, tables and the trajectory attachment; :mod:`amorph.publish.rules` the server's
    rules, checked offline.

How
    :class:`amorph.results.reader.Database` reads the results from the store;
    :func:`amorph.publish.contributions.build_groups` builds and validates the contributions
    composition by composition (a composition goes up only when all its temperatures are valid, so
    its Arrhenius numbers never come from part of its temperatures);
    :func:`amorph.publish.upload.publish` uploads them with ``mpcontribs-client`` in batches and
    checks on the server that every identifier arrived. Publishing never writes local files.
"""

from amorph.errors import AmorphError


class PublishError(AmorphError):
    """Contributions could not be built or uploaded, or the server did not store them."""
