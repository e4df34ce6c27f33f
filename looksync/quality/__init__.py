"""Match quality: the evaluation harness (``evaluation/``), catalog fine-tuning (``finetune``) and
human judging (``judging/``)."""
