"""Evaluation shared by training and inference: the one eval function, compiled once per shape bucket,
and zero-shot evaluation of a run. Neither `train` nor `infer` is imported here."""
