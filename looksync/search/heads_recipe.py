"""The detection heads' default training sample (``looksync heads train``, ``make demo``), in one place and
free of heavy imports (the CLI's option defaults read it)."""

from __future__ import annotations

# a catalog of its own, 1 look in 6 on the fixed frame, the rest varied (the ``train`` framing split)
# 720 looks (1200 / 120 / 600) gained no-hint Recall@10 with a stronger fine-tune (s1500, 30 epochs: +0.04-0.05 over
# 360, two draws) but nothing over the demo's own heads on its checkpoint, at twice the heads step: 360 stays
# (docs/evaluation.md, "a stronger fine-tune and more heads looks")
RECIPE_SIZE, RECIPE_FIXED_LOOKS, RECIPE_VARIED_LOOKS, RECIPE_SEED = 600, 60, 300, 101
RECIPE_LOOKS = RECIPE_FIXED_LOOKS + RECIPE_VARIED_LOOKS
# looks of a second sample (seed + 101, half the catalog) that train the gender head alone: off by default. 360
# of them read held-out framings as well or better offline (gender 0.915 / 0.88 -> 0.915 / 0.925 on 200 looks of
# seeds 11 / 13; 5-fold 0.886 -> 0.911) but one look fewer right on the eval sample (0.957 -> 0.942), and they
# cost `heads train` 3 min more (docs/evaluation.md, issue 14)
RECIPE_GENDER_LOOKS, RECIPE_GENDER_SEED_OFFSET = 0, 101
# the presence CNN (``looksync/search/presence_net.py``): trained on looks of a third sample (seed + 303, half the
# catalog, same proportions), placed but never embedded; 0 looks: no CNN (format-4 heads). 600 looks: presence
# precision 0.820 -> 0.852 on the eval sample at recall 0.910 -> 0.902, no-hint Recall@10 +0.008 (docs/evaluation.md,
# "a pixel CNN for layer presence"). 1,200 looks: 0.852 / 0.902 -> 0.856 / 0.929 on the eval sample, no-hint
# Recall@10 half in view 0.806 -> 0.820 (bag 0.63 -> 0.68, eyewear 0.75 -> 0.80; held-out framings offline: F1
# 0.836 -> 0.854), for about twice the CNN's share of `heads train` (600 looks: 80 s generated, 28 placed, 222
# trained at load ~5 in the demo) and nothing more a no-hint look (the same CNN). 1,800 looks read better still
# alone (F1 0.834 -> 0.856) but were not measured blended (docs/evaluation.md, "a stronger presence CNN")
RECIPE_NET_LOOKS, RECIPE_NET_EPOCHS, RECIPE_NET_SEED_OFFSET = 1200, 20, 303


def sample_recipe(looks: int = RECIPE_LOOKS) -> dict[str, int]:
    """``train_from_sample``'s catalog size, fixed-frame and varied looks and the presence CNN's looks for
    ``looks`` looks in all, in the default recipe's proportions (at least 60 products and one look of each kind)."""
    fixed = max(1, looks * RECIPE_FIXED_LOOKS // RECIPE_LOOKS)
    return {"size": max(60, looks * RECIPE_SIZE // RECIPE_LOOKS), "fixed_looks": fixed, "varied_looks": max(1, looks - fixed),
            "net_looks": looks * RECIPE_NET_LOOKS // RECIPE_LOOKS}  # fmt: skip
