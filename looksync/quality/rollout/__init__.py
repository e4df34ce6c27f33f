"""Model rollout (issue 19): the evidence on a candidate index version (offline comparison with live,
shadow comparisons of mirrored queries), the gates over it, and the HTML evidence report."""
