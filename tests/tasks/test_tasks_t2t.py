"""Text-to-text forms: templates as upstream writes them, truncation counts, parsing back."""

import numpy as np
import pytest
from t5_fixtures import make_t5_tokenizer

from xtjax.data.formats.records import ClassificationExample, MultipleChoiceExample, QAExample, TaggingExample
from xtjax.errors import ConfigError
from xtjax.tasks import registry, t2t_forms
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.featurize import merge_truncation_reports, truncation_report
from xtjax.tasks.text_to_text import GeneratedPredictions, encode_pairs


def test_every_target_task_and_intermediate_task_has_a_form():
  wanted = ["anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa", "ccg",
            "xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "xcopa"]
  for name in wanted:
    task = registry.get(name + "_t2t")
    assert task.head_type == "text_to_text" and task.main_metric == registry.get(name).main_metric
  with pytest.raises(ConfigError, match="no text-to-text form"):
    t2t_forms.form("tatoeba")


def test_templates_follow_mt5_and_t5():
  nli = ClassificationExample("g", "A man sleeps.", "Nobody sleeps.", "contradiction")
  assert t2t_forms.form("xnli").to_text(nli) == ("xnli: premise: A man sleeps. hypothesis: Nobody sleeps.", "2")
  paws = ClassificationExample("g", "A", "B", "1")
  assert t2t_forms.form("pawsx").to_text(paws) == ("paws sentence1: A sentence2: B", "paraphrase")
  assert t2t_forms.form("qqp").to_text(ClassificationExample("g", "A", "B", "0"))[1] == "not_duplicate"
  qa = QAExample("q1", "Who?", "Ann went.", (("Ann", 0),), False)
  assert t2t_forms.form("xquad").to_text(qa) == ("question: Who? context: Ann went.", "Ann")
  copa = MultipleChoiceExample("c", "The man fell.", "cause", ("He slipped.", "He sang."), 0)
  assert t2t_forms.form("xcopa").to_text(copa) == (
      "xcopa choice1: He slipped. choice2: He sang. premise: The man fell. question: cause", "choice1")
  ner = TaggingExample("n", ("John", "Smith", "visited", "New", "York", "."),
                       ("B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"))
  assert t2t_forms.form("panx").to_text(ner) == ("ner: John Smith visited New York .",
                                                 "PER: John Smith $$ LOC: New York")


def test_parsing_maps_text_back_and_flags_invalid_outputs():
  nli = ClassificationExample("g", "a", "b", "entailment")
  parse = t2t_forms.form("xnli").parse
  assert parse("0", nli) == "entailment" and parse(" 2 ", nli) == "contradiction" and parse("maybe", nli) is None
  copa = MultipleChoiceExample("c", "p", "cause", ("x", "y"), 1)
  mc = t2t_forms.form("xcopa").parse
  assert mc("choice2", copa) == 1 and mc("choice3", copa) is None and mc("y", copa) is None
  tokens = ("a", "Paris", "b", "Paris")
  assert t2t_forms.parse_entities("LOC: Paris $$ LOC: Paris", tokens) == ("O", "B-LOC", "O", "B-LOC")
  assert t2t_forms.parse_entities("", tokens) == ("O",) * 4
  assert t2t_forms.parse_entities("LOC: London", tokens) is None
  assert t2t_forms.parse_entities("Paris", tokens) is None
  pos = TaggingExample("p", ("a", "b"), ("DET", "NOUN"))
  assert t2t_forms.form("udpos").to_text(pos) == ("pos: a b", "DET NOUN")
  assert t2t_forms.form("udpos").parse("DET NOUN", pos) == ("DET", "NOUN")
  assert t2t_forms.form("udpos").parse("DET", pos) is None


def test_featurize_truncates_to_config_lengths_and_counts_target_truncation():
  tok = make_t5_tokenizer()
  pairs = [("The quick brown fox jumps over the lazy dog.", "The quick brown fox jumps over the lazy dog."),
           ("lazy dog", "fox")]
  arrays, stats = encode_pairs(pairs, tok, input_length=6, target_length=4)
  assert arrays["input_ids"].shape == (2, 6) and arrays["labels"].shape == (2, 4)
  assert stats["truncated"] == 1 and stats["truncated_targets"] == 1
  eos = tok.eos_token_id
  assert arrays["input_ids"][0, -1] == eos and arrays["labels"][0, -1] == eos  # EOS kept after the cut
  fox = tok("fox")["input_ids"]
  np.testing.assert_array_equal(arrays["labels"][1], fox + [-100] * (4 - len(fox)))


def test_truncation_report_counts_inputs_and_targets_per_task():
  """What the trainer logs and records in summary.json `truncation` for every task and split."""
  task = registry.get("xnli_t2t")
  long = "The quick brown fox jumps over the lazy dog."
  examples = [ClassificationExample("a", long, long, "entailment"), ClassificationExample("b", "dog", "fox", "neutral"),
              ClassificationExample("c", "fox", "dog", "contradiction")]
  feats = task.featurize(examples, make_t5_tokenizer(), FeatureSettings(max_length=40, max_target_length=2))
  # Every target is 3 tokens long ("0" is 2 tokens of the tiny tokenizer, then EOS), so a 2-token
  # target length (the least there is: a token and EOS) cuts all three.
  assert truncation_report(len(examples), feats) == {
      "examples": 3, "features": 3, "truncated": 1, "truncation_rate": 1 / 3, "truncated_targets": 3,
      "target_truncation_rate": 1.0}
  stats = task.stats(examples, feats)  # what `xtjax data stats` prints agrees
  assert stats["truncation_rate"] == 1 / 3 and stats["target_truncation_rate"] == 1.0
  # Processes featurise disjoint shares: the run's report sums their counts, rates recomputed.
  shares = [task.featurize(part, make_t5_tokenizer(), FeatureSettings(max_length=40, max_target_length=2))
            for part in (examples[:1], examples[1:])]
  merged = merge_truncation_reports([truncation_report(1, shares[0]), truncation_report(2, shares[1])])
  assert merged == truncation_report(len(examples), feats)


def test_wrapped_task_scores_with_the_base_metric_and_counts_invalid(tmp_path):
  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.data.sources import DataSource

  task = registry.get("toy_cls_t2t")
  data = write_toy_data(tmp_path, n_train=4, n_eval=4)
  examples = task.read("dev", "en", DataSource(path=str(data / "{split}.{lang}.jsonl")))
  feats = task.featurize(examples, make_t5_tokenizer(), FeatureSettings(max_length=16, max_target_length=4))
  assert feats.arrays["labels"].shape == (4, 4)
  gold = [task.form.to_text(ex)[1] for ex in examples]
  texts = gold[:2] + ["dunno", gold[3]]
  preds = task.predict(texts, feats, examples, FeatureSettings())
  assert isinstance(preds, GeneratedPredictions) and preds.invalid == 1
  assert task.score(preds, examples, "en") == {"accuracy": 75.0, "invalid_outputs": 25.0}


def test_span_corruption_hides_about_15_percent_in_spans_and_round_trips():
  from xtjax.tasks.mlm import TextExample

  words = [f"w{i}" for i in range(40)]
  inputs, target = t2t_forms.span_corruption(words, seed=3)
  ins, outs = inputs.split(), target.split()
  sentinels = [w for w in ins if w.startswith("<extra_id_")]
  assert len(sentinels) == 2 and outs[-1] == "<extra_id_2>"  # round(40 * .15) = 6 noise words in 2 spans
  assert len([w for w in outs if not w.startswith("<")]) == 6 and len([w for w in ins if not w.startswith("<")]) == 34
  # Filling each sentinel with its span gives the text back.
  spans, current = {}, None
  for w in outs:
    if w.startswith("<extra_id_"):
      current = w
      spans[current] = []
    else:
      spans[current].append(w)
  assert [x for w in ins for x in (spans[w] if w in spans else [w])] == words
  ex = TextExample("en-1", "en", " ".join(words))
  form = t2t_forms.form("mlm")
  assert form.to_text(ex) == form.to_text(ex)  # deterministic per example
  task = registry.get("mlm_t2t")
  gold = form.to_text(ex)[1]
  assert task.score(task.predict([gold], _many(1), [ex], FeatureSettings()), [ex], "en")["accuracy"] == 100.0


def test_generated_answers_and_entities_score_with_the_official_metrics():
  qa_task = registry.get("xquad_t2t")
  qa = [QAExample("q1", "Who?", "Ann went.", (("Ann", 0),), False),
        QAExample("q2", "Where?", "To Rome.", (("Rome", 3),), False)]
  preds = qa_task.predict(["Ann", "Paris"], _many(2), qa, FeatureSettings())
  assert preds.values == {"q1": "Ann", "q2": "Paris"}
  scores = qa_task.score(preds, qa, "en")
  assert scores["exact_match"] == 50.0 and scores["f1"] == 50.0 and scores["invalid_outputs"] == 0.0
  assert qa_task.submission_text(preds, qa) == ("json", '{"q1": "Ann", "q2": "Paris"}')
  ner_task = registry.get("panx_t2t")
  ner = [TaggingExample("n1", ("John", "lives", "in", "Paris"), ("B-PER", "O", "O", "B-LOC")),
         TaggingExample("n2", ("Rome", "is", "old"), ("B-LOC", "O", "O"))]
  preds = ner_task.predict(["PER: John $$ LOC: Paris", "LOC Rome"], _many(2), ner, FeatureSettings())
  assert preds.invalid == 1 and preds.values[1] == ("O", "O", "O")  # unparseable: every entity missed
  scores = ner_task.score(preds, ner, "en")
  assert scores["f1"] == pytest.approx(100 * 2 * 2 / (2 * 2 + 0 + 1)) and scores["invalid_outputs"] == 50.0
  mc_task = registry.get("xcopa_t2t")
  copa = [MultipleChoiceExample("c", "p", "cause", ("x", "y"), 1)]
  preds = mc_task.predict(["choice2"], _many(1), copa, FeatureSettings())
  assert mc_task.score(preds, copa, "et")["accuracy"] == 100.0 and mc_task.submission_text(preds, copa)[1] == "1\n"


def _many(n):
  from xtjax.tasks.base import Features

  return Features({}, np.arange(n))


def test_text_to_text_forms_use_their_base_tasks_languages_and_sources():
  from xtjax.evaluation.zero_shot import eval_languages
  from xtjax.runs.schema import ModelConfig, TaskConfig, TrainConfig
  from xtjax.tasks.catalog import task_rows

  rows = {r["task"]: r for r in task_rows()}
  assert rows["xnli_t2t"]["languages"] == rows["xnli"]["languages"] and rows["xnli_t2t"]["hf"] == rows["xnli"]["hf"]
  cfg = TrainConfig(model=ModelConfig(preset="mt5-small"), tasks=(TaskConfig(name="xnli_t2t"),))
  assert eval_languages(cfg, cfg.tasks[0]) == eval_languages(cfg, TaskConfig(name="xnli")) and len(
      eval_languages(cfg, cfg.tasks[0])) == 15
