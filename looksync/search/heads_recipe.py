"""The detection heads' default training sample (``looksync heads train``, ``make demo``), in one place and
free of heavy imports (the CLI's option defaults read it)."""

from __future__ import annotations

# a catalog of its own, 1 look in 6 on the fixed frame, the rest varied (the ``train`` framing split)
RECIPE_SIZE, RECIPE_FIXED_LOOKS, RECIPE_VARIED_LOOKS, RECIPE_SEED = 600, 60, 300, 101
RECIPE_LOOKS = RECIPE_FIXED_LOOKS + RECIPE_VARIED_LOOKS


def sample_recipe(looks: int = RECIPE_LOOKS) -> dict[str, int]:
    """``train_from_sample``'s catalog size and fixed-frame and varied looks for ``looks`` looks in all, in the
    default recipe's proportions (at least 60 products and one look of each kind)."""
    fixed = max(1, looks * RECIPE_FIXED_LOOKS // RECIPE_LOOKS)
    return {"size": max(60, looks * RECIPE_SIZE // RECIPE_LOOKS), "fixed_looks": fixed, "varied_looks": max(1, looks - fixed)}
