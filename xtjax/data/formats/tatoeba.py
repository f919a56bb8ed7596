"""Tatoeba (LASER test set): line-aligned `tatoeba.{l3}-eng.{l3}` and `tatoeba.{l3}-eng.eng`.

Line i of one file translates line i of the other, so the gold alignment is the identity. (XTREME's
preprocessing sorts the English side to hide it; read the original files to get gold pairs.)
"""

from __future__ import annotations

from pathlib import Path

from xtjax.data.formats.common import PathLike, fail, iter_lines
from xtjax.data.formats.records import ParallelPair, ReadResult

# ISO 639-3 -> the 2-letter codes XTREME uses (google-research/xtreme utils_preprocess.py): its 36
# Tatoeba languages, then the 5 XTREME-R adds (az lt pl uk ro).
TATOEBA_LANG3_TO_LANG2 = {
    "afr": "af", "ara": "ar", "bul": "bg", "ben": "bn", "deu": "de", "ell": "el", "spa": "es",
    "est": "et", "eus": "eu", "pes": "fa", "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi",
    "hun": "hu", "ind": "id", "ita": "it", "jpn": "ja", "jav": "jv", "kat": "ka", "kaz": "kk",
    "kor": "ko", "mal": "ml", "mar": "mr", "nld": "nl", "por": "pt", "rus": "ru", "swh": "sw",
    "tam": "ta", "tel": "te", "tha": "th", "tgl": "tl", "tur": "tr", "urd": "ur", "vie": "vi",
    "cmn": "zh", "aze": "az", "lit": "lt", "pol": "pl", "ukr": "uk", "ron": "ro",
}
TATOEBA_LANG2_TO_LANG3 = {v: k for k, v in TATOEBA_LANG3_TO_LANG2.items()}


def tatoeba_lang3(lang: str) -> str:
  """Accepts an XTREME 2-letter code or any 3-letter LASER code; returns the 3-letter code."""
  if len(lang) == 2:
    if lang not in TATOEBA_LANG2_TO_LANG3:
      raise ValueError(f"no Tatoeba language for {lang!r}; known: {sorted(TATOEBA_LANG2_TO_LANG3)}")
    return TATOEBA_LANG2_TO_LANG3[lang]
  return lang


def read_tatoeba(data_dir: PathLike, lang: str) -> ReadResult:
  """Reads the `lang`-English pairs from a LASER `data/tatoeba/v1` folder.

  `lang` is a 2-letter XTREME code or a 3-letter LASER code. The two files must have the same
  number of lines and no empty line. Pairs carry 2-letter codes where XTREME has one.
  """
  l3 = tatoeba_lang3(lang)
  source_path = Path(data_dir) / f"tatoeba.{l3}-eng.{l3}"
  target_path = Path(data_dir) / f"tatoeba.{l3}-eng.eng"
  sources = _sentences(source_path)
  targets = _sentences(target_path)
  if len(sources) != len(targets):
    raise fail(source_path, None, None,
               f"{len(sources)} lines but {target_path} has {len(targets)}; files must align")
  source_lang = TATOEBA_LANG3_TO_LANG2.get(l3, l3)
  pairs = [ParallelPair(str(i), s, t, source_lang, "en")
           for i, (s, t) in enumerate(zip(sources, targets))]
  return ReadResult(str(source_path), pairs, {}, {"pairs": len(pairs)})


def _sentences(path: Path) -> list[str]:
  sentences = []
  for number, line in iter_lines(path):
    if not line.strip():
      raise fail(path, number, None, "empty line; Tatoeba files hold one sentence per line")
    sentences.append(line)
  return sentences
