"""Mewsli-X entity linking as retrieval (XTREME-R), from the files `get-mewsli-x.sh` produces.

- `candidate_set_entities.jsonl`: one entity per line (entity_id, title, description,
  description_language, sentence_spans [{start, end}]).
- `wikinews_mentions-{dev,test}.jsonl`: one article per line: {context: {language, text,
  sentence_spans}, mentions: [{example_id, entity_id, mention_span: {start, end, text}}]}.
- `wikipedia_pairs-{train,dev}.jsonl`: {contextual_mention: {context, mention}, entity}.

A mention becomes a RetrievalQuery whose context is the one sentence holding the mention (the
XTREME-R baseline's window of 0 sentences) and whose span is relative to that sentence. An entity
becomes a RetrievalCandidate whose text is its description sentences joined by spaces, newlines
folded, as XTREME-R's `preprocess_entity_description` does.
"""

from __future__ import annotations

from xtjax.data.formats.common import PathLike, fail, get, iter_jsonl
from xtjax.data.formats.records import ReadResult, RetrievalCandidate, RetrievalQuery

# Languages of the WikiNews mentions (XTREME-R's Mewsli-X evaluation languages).
MEWSLIX_LANGUAGES = ("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk")


def read_mewslix_entities(path: PathLike) -> ReadResult:
  """Reads the candidate set; the entities come back as `candidates` (examples stay empty)."""
  candidates, seen = [], set()
  for number, obj in iter_jsonl(path):
    entity = _entity(path, number, obj, "")
    if entity.guid in seen:
      raise fail(path, number, "entity_id", f"duplicate entity {entity.guid!r}")
    seen.add(entity.guid)
    candidates.append(entity)
  return ReadResult(str(path), [], {}, {"entities": len(candidates)}, candidates)


def read_mewslix_mentions(path: PathLike) -> ReadResult:
  """Reads WikiNews mentions (evaluation); relevant = (gold entity_id,)."""
  queries, documents = [], 0
  for number, obj in iter_jsonl(path):
    context = get(obj, "context", dict, path, number)
    for i, mention in enumerate(get(obj, "mentions", list, path, number)):
      queries.append(_mention(path, number, context, mention, f"mentions[{i}]"))
    documents += 1
  return ReadResult(str(path), queries, {}, {"documents": documents, "mentions": len(queries)})


def read_mewslix_pairs(path: PathLike) -> ReadResult:
  """Reads Wikipedia mention-entity pairs (training); the paired entities are the candidates."""
  queries, entities = [], {}
  for number, obj in iter_jsonl(path):
    pair = get(obj, "contextual_mention", dict, path, number)
    context = get(pair, "context", dict, path, number, "contextual_mention.context")
    mention = get(pair, "mention", dict, path, number, "contextual_mention.mention")
    query = _mention(path, number, context, mention, "contextual_mention.mention")
    entity = _entity(path, number, get(obj, "entity", dict, path, number), "entity.")
    if query.relevant != (entity.guid,):
      raise fail(path, number, "entity.entity_id",
                 f"{entity.guid!r} differs from the mention's entity_id {query.relevant[0]!r}")
    if entities.setdefault(entity.guid, entity) != entity:
      raise fail(path, number, "entity", f"entity {entity.guid!r} differs from an earlier copy")
    queries.append(query)
  counts = {"pairs": len(queries), "entities": len(entities)}
  return ReadResult(str(path), queries, {}, counts, list(entities.values()))


def _spans(path, number, obj, field, text) -> list[tuple[int, int]]:
  spans = []
  for i, span in enumerate(get(obj, "sentence_spans", list, path, number, field)):
    start = get(span, "start", int, path, number, f"{field}[{i}].start")
    end = get(span, "end", int, path, number, f"{field}[{i}].end")
    if not 0 <= start < end <= len(text):
      raise fail(path, number, f"{field}[{i}]",
                 f"[{start}, {end}) is not a span of the {len(text)}-character text")
    spans.append((start, end))
  return spans


def _entity(path, number, obj, prefix) -> RetrievalCandidate:
  entity_id = get(obj, "entity_id", str, path, number, f"{prefix}entity_id")
  description = get(obj, "description", str, path, number, f"{prefix}description")
  language = get(obj, "description_language", str, path, number, f"{prefix}description_language")
  spans = _spans(path, number, obj, f"{prefix}sentence_spans", description)
  text = " ".join(description[s:e] for s, e in spans)
  text = " ".join(text.splitlines()).replace("  ", " ").strip()
  return RetrievalCandidate(entity_id, language, text)


def _mention(path, number, context, mention, field) -> RetrievalQuery:
  text = get(context, "text", str, path, number, "context.text")
  language = get(context, "language", str, path, number, "context.language")
  example_id = get(mention, "example_id", str, path, number, f"{field}.example_id")
  entity_id = get(mention, "entity_id", str, path, number, f"{field}.entity_id")
  span = get(mention, "mention_span", dict, path, number, f"{field}.mention_span")
  start = get(span, "start", int, path, number, f"{field}.mention_span.start")
  end = get(span, "end", int, path, number, f"{field}.mention_span.end")
  surface = get(span, "text", str, path, number, f"{field}.mention_span.text")
  if not text:
    raise fail(path, number, "context.text",
               "empty; this is a *_no_text file: run Mewsli-X's restore_text step first")
  if not 0 <= start < end <= len(text) or text[start:end] != surface:
    raise fail(path, number, f"{field}.mention_span",
               f"{example_id}: context.text[{start}:{end}] is not {surface!r}")
  spans = _spans(path, number, context, "context.sentence_spans", text)
  sentence = next(((s, e) for s, e in spans if s <= start and end <= e), None)
  if sentence is None:
    raise fail(path, number, f"{field}.mention_span",
               f"{example_id}: the mention lies in no single sentence")
  s, e = sentence
  return RetrievalQuery(example_id, language, surface, (entity_id,), text[s:e],
                        (start - s, end - s))
