"""`xtjax data download`: fetch a plan's items and write them in the upstream formats xtjax reads.

Each file is written atomically (locally a temp file, then rename; on `gs://` one object write)
and recorded in `MANIFEST.json` (source, revision, license, sha256, example count); a re-run skips
files whose checksum still matches, so an interrupted download resumes. Offline, the first item
to fetch is named with where it comes from. `hub_dirs` maps hub ids to local mirrors (a folder in
the hub's parquet layout).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xtjax.data.sources import DataSource, hf_rows
from xtjax.errors import DataError
from xtjax.io_utils import atomic_path, write_text_atomic
from xtjax.tasks.download_plan import FetchItem
from xtjax.tasks.source_check import source_row
from xtjax.tasks.tagging import UPOS_LABELS

log = logging.getLogger(__name__)
MANIFEST = "MANIFEST.json"


def sha256(path) -> str:
  digest = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _offline() -> bool:
  return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"


def hub_rows(item: FetchItem, hub_dirs: Mapping[str, str | Path]) -> list[dict[str, Any]]:
  """The item's rows from the hub (or its local mirror); one line naming what failed otherwise."""
  local = hub_dirs.get(item.hf_id)
  if local is None and _offline():
    raise DataError(f"offline: fetch {item.task} {item.split}/{item.language} from {item.where()} "
                    f"(unset HF_HUB_OFFLINE, or pass --hub-mirror {item.hf_id}=DIR)")
  source = DataSource(kind="hf", hf_id=str(local or item.hf_id), hf_config=item.hf_config,
                      hf_revision=None if local else item.hf_revision)
  try:
    rows = [dict(r) for r in hf_rows(source, item.split, item.language, item.task)]
  except DataError as e:
    raise DataError(f"cannot fetch {item.task} {item.split}/{item.language} from {item.where()}: {e}") from e
  prefix = source_row(item.task).id_prefixes.get(item.language)
  if prefix:  # TyDi QA GoldP: every language in one split
    rows = [r for r in rows if str(r.get("id", "")).split("-", 1)[0] == prefix]
  return rows


# ---- writers: hub rows -> upstream formats ------------------------------------------------------

def squad_json(rows: Iterable[Mapping], _item: FetchItem) -> str:
  """SQuAD v1.1/v2.0 JSON: articles by title, paragraphs by context, questions with answers."""
  articles: dict[str, dict[str, list]] = {}
  for r in rows:
    paragraphs = articles.setdefault(r.get("title") or "", {})
    answers = r.get("answers") or {"text": [], "answer_start": []}
    qa = {"id": str(r["id"]), "question": r["question"],
          "answers": [{"text": t, "answer_start": int(s)} for t, s in zip(answers["text"], answers["answer_start"])]}
    paragraphs.setdefault(r["context"], []).append(qa)
  data = [{"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paras.items()]}
          for title, paras in articles.items()]
  return json.dumps({"version": "xtjax-download", "data": data}, ensure_ascii=False)


def conllu(rows: Iterable[Mapping], item: FetchItem) -> str:
  """CoNLL-U with FORM and UPOS filled (google/xtreme udpos: tokens, pos_tags in UPOS_LABELS order)."""
  out = []
  for n, r in enumerate(rows):
    out.append(f"# sent_id = {item.language}-{item.split}-{n}\n")
    for i, (token, tag) in enumerate(zip(r["tokens"], r["pos_tags"]), 1):
      upos = UPOS_LABELS[tag] if isinstance(tag, int) else tag
      out.append(f"{i}\t{token}\t_\t{upos}\t_\t_\t_\t_\t_\t_\n")
    out.append("\n")
  return "".join(out)


def panx_tsv(rows: Iterable[Mapping], item: FetchItem) -> str:
  """XTREME's PAN-X layout: `lang:token<TAB>tag`, a blank line after each sentence."""
  from xtjax.tasks.tagging import PANX_LABELS

  out = []
  for r in rows:
    for token, tag in zip(r["tokens"], r["ner_tags"]):
      out.append(f"{item.language}:{token}\t{PANX_LABELS[tag] if isinstance(tag, int) else tag}\n")
    out.append("\n")
  return "".join(out)


def tatoeba_pair(rows: Sequence[Mapping], _item: FetchItem) -> tuple[str, str]:
  """(non-English side, English side): LASER's two aligned files, one sentence a line."""
  return ("".join(r["source_sentence"].strip() + "\n" for r in rows),
          "".join(r["target_sentence"].strip() + "\n" for r in rows))


def jsonl(rows: Iterable[Mapping], _item: FetchItem) -> str:
  return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


WRITE: dict[str, Callable] = {"squad": squad_json, "conllu": conllu, "panx": panx_tsv, "jsonl": jsonl}


# ---- the output folder: local or gs:// ------------------------------------------------------------

def _folder(out):
  """The output folder as an `etils.epath.Path` (local, or `gs://` and the other remote schemes)."""
  from etils import epath

  return epath.Path(out)


def _remote(path) -> bool:
  return "://" in str(path)


def _write(path, text: str) -> None:
  """Atomic per file: locally a temp file renamed into place; a cloud object is written whole."""
  if _remote(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
  else:
    write_text_atomic(Path(str(path)), text)


def _put(local: Path, path) -> None:
  """Copies a finished local file (or each file of a folder) onto `path`, atomically per file."""
  if local.is_dir():
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
      _put(f, path / str(f.relative_to(local)))
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  if _remote(path):
    _folder(str(local)).copy(path, overwrite=True)  # one object write
  else:
    with atomic_path(Path(str(path))) as tmp:
      shutil.copyfile(local, tmp)


# ---- the download loop --------------------------------------------------------------------------

def read_manifest(out: Path) -> dict[str, Any]:
  path = out / MANIFEST
  if not path.exists():
    return {"files": {}}
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: not valid JSON ({e}); remove it to start over") from e


def _done(out: Path, manifest: Mapping, rel: str) -> bool:
  entry = manifest["files"].get(rel)
  return entry is not None and (out / rel).exists() and sha256(out / rel) == entry["sha256"]


def _record(out: Path, manifest: dict, rel: str, item: FetchItem, count: int, commit: str = "") -> None:
  manifest["files"][rel] = {"task": item.task, "split": item.split, "language": item.language,
                            "source": item.source, "revision": item.hf_revision or ("main" if item.kind == "hf" else "-"), "commit": commit,
                            "license": item.license, "sha256": sha256(out / rel), "count": count}


def hub_commit(hf_id: str, revision: str | None) -> str:
  """The commit a hub revision (branch, tag or sha) resolves to now, recorded in the MANIFEST."""
  from huggingface_hub import HfApi

  try:
    return HfApi().dataset_info(hf_id, revision=revision or "main").sha or ""
  except Exception as e:  # the hub client raises many types; name the dataset
    raise DataError(f"cannot resolve {hf_id}@{revision or 'main'} on the hub: {type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''}") from e


def download(items: Sequence[FetchItem], out: str | Path, *, hub_dirs: Mapping[str, str | Path] | None = None,
             fetch_url: Callable[[str, Path], None] | None = None,
             resolve_commit: Callable[[str, str | None], str] = hub_commit) -> dict[str, Any]:
  """Fetches every item not already present; returns the manifest (also written to OUT/MANIFEST.json).
  Hub items record the commit their revision resolved to (`mirror:DIR` for a local mirror)."""
  out = _folder(out)
  commits: dict[tuple[str, str | None], str] = {}

  def commit_of(item: FetchItem) -> str:
    if item.hf_id in (hub_dirs or {}):
      return f"mirror:{hub_dirs[item.hf_id]}"
    key = (item.hf_id, item.hf_revision)
    if key not in commits:
      commits[key] = resolve_commit(*key)
    return commits[key]

  out.mkdir(parents=True, exist_ok=True)
  manifest = read_manifest(out)
  manual = [i for i in items if i.kind == "manual"]
  for item in items:
    if item.kind == "manual":
      continue
    if item.kind == "url":
      _fetch_url_item(item, out, manifest, fetch_url or _urlretrieve)
    else:
      _fetch_hub_item(item, out, manifest, hub_dirs or {}, commit_of)
    _write(out / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True))
  manifest["created"] = manifest.get("created") or datetime.datetime.now(datetime.timezone.utc).isoformat()
  manifest["counts"] = counts_by_task(manifest)
  manifest["manual"] = {i.task: {"step": i.note, "source": i.url, "license": i.license} for i in manual}
  _write(out / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True))
  return manifest


def _fetch_hub_item(item: FetchItem, out: Path, manifest: dict, hub_dirs: Mapping,
                    commit_of: Callable[[FetchItem], str]) -> None:
  files = [item.target] + ([item.target.rsplit(".", 1)[0] + ".eng"] if item.writer == "tatoeba" else [])
  if all(_done(out, manifest, rel) for rel in files):
    log.info("%s: present, skipped", item.target)
    return
  rows = hub_rows(item, hub_dirs)
  commit = commit_of(item)
  texts = tatoeba_pair(rows, item) if item.writer == "tatoeba" else (WRITE[item.writer](rows, item),)
  for rel, text in zip(files, texts):
    _write(out / rel, text)
    _record(out, manifest, rel, item, len(rows), commit)


def _urlretrieve(url: str, dest: Path) -> None:
  try:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
      shutil.copyfileobj(response, f)
  except OSError as e:
    raise DataError(f"cannot fetch {url}: {type(e).__name__}: {e}") from e


def _fetch_url_item(item: FetchItem, out: Path, manifest: dict, fetch_url: Callable[[str, Path], None]) -> None:
  """Original files (space-separated URLs) into TASK/; archives are unpacked next to themselves."""
  for url in item.url.split():
    rel = item.target + url.rstrip("/").rsplit("/", 1)[-1]
    if _done(out, manifest, rel):
      continue
    if _offline() and fetch_url is _urlretrieve:
      raise DataError(f"offline: fetch {item.task} ({item.language}) from {url}")
    with tempfile.TemporaryDirectory() as tmp:
      archive = Path(tmp) / "download"
      fetch_url(url, archive)
      if rel.endswith((".tar.bz2", ".tar.gz", ".tgz", ".zip")):  # unpacked next to the archive, as XTREME does
        unpacked = Path(tmp) / "unpacked"
        shutil.unpack_archive(archive, unpacked, format=_archive_format(rel))
        _put(unpacked, out / item.target)
      _put(archive, out / rel)
    _record(out, manifest, rel, item, 0)


def _archive_format(name: str) -> str:
  return "bztar" if name.endswith(".tar.bz2") else "gztar" if name.endswith((".tar.gz", ".tgz")) else "zip"


def counts_by_task(manifest: Mapping) -> dict[str, dict[str, dict[str, int]]]:
  """{task: {split: {language: examples}}} of the files in a manifest."""
  counts: dict[str, dict[str, dict[str, int]]] = {}
  for entry in manifest["files"].values():
    by_lang = counts.setdefault(entry["task"], {}).setdefault(entry["split"], {})
    by_lang[entry["language"]] = entry["count"]
  return counts


# ---- CCGbank: licensed by the LDC, supplied by the user -----------------------------------------

# The standard CCG supertagging split of the WSJ sections (Clark & Curran; Phang et al.).
CCG_SECTIONS = {"train": tuple(f"{s:02d}" for s in range(2, 22)), "dev": ("00",), "test": ("23",)}


def check_ccgbank(root: str | Path, out: str | Path) -> dict[str, int]:
  """Checks a user-supplied CCGbank 1.1 (its root or data/AUTO folder), writes OUT/ccg/{split}.auto
  (sections 02-21 / 00 / 23, read by the `ccg` task) and records them in OUT/MANIFEST.json.
  Returns sentences per split."""
  from xtjax.data.formats import read_ccgbank_auto

  out = _folder(out)
  if _remote(out):
    raise DataError(f"{out}: check-ccg writes a local folder (CCGbank is licensed; keep it off shared buckets)")
  root = Path(root)
  auto = next((p for p in (root, root / "data" / "AUTO", root / "AUTO") if (p / "00").is_dir()), None)
  if auto is None:
    raise DataError(f"{root}: no CCGbank AUTO folder (expected data/AUTO/00 ... 24 with wsj_*.auto files; "
                    f"CCGbank 1.1 is LDC2005T13)")
  manifest = read_manifest(out)
  counts = {}
  for split, sections in CCG_SECTIONS.items():
    files = [f for s in sections for f in sorted((auto / s).glob("wsj_*.auto"))]
    missing = [s for s in sections if not (auto / s).is_dir()]
    if missing or not files:
      raise DataError(f"{auto}: CCGbank sections {missing or list(sections)} missing or empty (split {split})")
    text = "".join(f.read_text(encoding="utf-8").rstrip("\n") + "\n" for f in files)
    rel = f"ccg/{split}.auto"
    _write(out / rel, text)
    counts[split] = len(read_ccgbank_auto(Path(str(out / rel))).examples)
    item = FetchItem("ccg", split, "en", "manual", rel, note=f"from {auto}", license=source_row("ccg").license)
    _record(out, manifest, rel, item, counts[split])
  manifest["counts"] = counts_by_task(manifest)
  _write(out / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True))
  return counts
