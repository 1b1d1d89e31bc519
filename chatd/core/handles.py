"""Lookalike handles (issue 14.9, SPEC.md 8.6): two handles whose skeletons are equal are one
handle as far as registration goes, so ``a1ice``, ``alice.`` and ``alice_`` are refused once
``alice`` exists.

The skeleton is Unicode TR39's (section 4, "Confusable Detection") restricted to what a handle
may hold. A handle is ASCII: ``[a-z0-9][a-z0-9_.]*`` (SPEC.md 2), so of ``confusables.txt`` only
the mappings whose source is one of those 38 characters can apply, and there are three:

=========  ==========  ========================================================
source     prototype   confusables.txt
=========  ==========  ========================================================
``0``      ``O``       ``0030 ; 004F ; MA`` DIGIT ZERO -> LATIN CAPITAL LETTER O
``1``      ``l``       ``0031 ; 006C ; MA`` DIGIT ONE -> LATIN SMALL LETTER L
``m``      ``rn``      ``006D ; 0072 006E ; MA`` LATIN SMALL LETTER M -> R, N
=========  ==========  ========================================================

(the other ASCII sources, ``I``, ``|``, quotes and the grave accent, cannot be in a handle;
NFD, the skeleton's first and last step, changes no ASCII). TR39's skeleton keeps case, and
handles have one case only, so the prototype is lowercased: ``0`` becomes ``o``. Beyond TR39,
which compares strings of letters: the separators ``_`` and ``.`` are dropped, because a reader
does not see where (or whether) ``alice.`` or ``al_ice`` has one. A table this small needs no
library (PyPI's ``confusable-homoglyphs`` checks mixed scripts and has no skeleton; ``confusables``
enumerates variants). The store indexes the same function written in SQL (``SKELETON_SQL``,
``chatd/store/migrations/*/0007_handle_skeleton.sql``), so the accounts that existed before the
index are covered too and the check is one index lookup.
"""

from __future__ import annotations

_SKELETON = str.maketrans({"0": "o", "1": "l", "m": "rn", "_": None, ".": None})


SKELETON_SQL = (
    "replace(replace(replace(replace(replace(handle, '_', ''), '.', ''), '0', 'o'), '1', 'l'),"
    " 'm', 'rn')"
)
"""``skeleton`` of the column ``handle`` in SQL (SQLite and PostgreSQL alike): the expression of
the ``accounts_skeleton`` index, which a query must repeat exactly for the index to serve it."""


def skeleton(handle: str) -> str:
    """The lookalike key of a (valid) handle: equal skeletons look alike."""
    return handle.translate(_SKELETON)
