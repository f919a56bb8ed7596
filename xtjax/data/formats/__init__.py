"""Readers for each dataset's upstream file format, returning plain records.

Every reader returns a `ReadResult` (examples, skipped-by-reason, counts, retrieval candidates)
and raises `xtjax.errors.DataError` naming the file, line or record, and field of anything
malformed. One module per format family:

  squad     SQuAD v1.1/v2.0, XQuAD, MLQA, TyDiQA-GoldP          -> QAExample
  conll     CoNLL-U (UD-POS), PAN-X, CCG supertags, CCGbank AUTO -> TaggingExample
  tsv       XNLI, MNLI, PAWS-X, QQP, XTREME pair files            -> ClassificationExample
            BUCC 2018                                             -> RetrievalQuery/Candidate
  jsonl     HellaSwag, CommonsenseQA, COPA/XCOPA, Social IQa      -> MultipleChoiceExample
            ANLI, SNLI/MNLI jsonl                                 -> ClassificationExample
  csv_mc    Cosmos QA                                             -> MultipleChoiceExample
  tatoeba   Tatoeba (LASER v1)                                    -> ParallelPair
  lareqa    XQuAD-R (LAReQA)                                      -> RetrievalQuery/Candidate
  mewslix   Mewsli-X                                              -> RetrievalQuery/Candidate
"""

from xtjax.data.formats.conll import read_ccgbank_auto, read_conllu, read_panx, read_supertags
from xtjax.data.formats.csv_mc import read_cosmosqa
from xtjax.data.formats.jsonl import (read_anli, read_commonsenseqa, read_copa, read_hellaswag,
                                      read_nli_jsonl, read_siqa)
from xtjax.data.formats.lareqa import read_lareqa, read_xquad_r
from xtjax.data.formats.mewslix import (read_mewslix_entities, read_mewslix_mentions,
                                        read_mewslix_pairs)
from xtjax.data.formats.records import (ClassificationExample, MultipleChoiceExample, ParallelPair,
                                        QAExample, ReadResult, RetrievalCandidate, RetrievalQuery,
                                        TaggingExample)
from xtjax.data.formats.squad import read_squad
from xtjax.data.formats.tatoeba import TATOEBA_LANG3_TO_LANG2, read_tatoeba
from xtjax.data.formats.tsv import (read_bucc, read_mnli, read_pawsx, read_qqp, read_xnli,
                                    read_xtreme_pairs)

__all__ = [
    "ClassificationExample", "MultipleChoiceExample", "ParallelPair", "QAExample", "ReadResult",
    "RetrievalCandidate", "RetrievalQuery", "TaggingExample", "TATOEBA_LANG3_TO_LANG2",
    "read_anli", "read_bucc", "read_ccgbank_auto", "read_commonsenseqa", "read_conllu",
    "read_copa", "read_cosmosqa", "read_hellaswag", "read_lareqa", "read_mewslix_entities",
    "read_mewslix_mentions", "read_mewslix_pairs", "read_mnli", "read_nli_jsonl", "read_panx",
    "read_pawsx", "read_qqp", "read_siqa", "read_squad", "read_supertags", "read_tatoeba",
    "read_xnli", "read_xquad_r", "read_xtreme_pairs",
]
