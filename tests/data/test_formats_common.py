"""Shared reading behaviour: encodings, gzip, line endings."""

import gzip

from xtjax.data.formats import TaggingExample, read_panx, read_tatoeba


def test_invalid_utf8_names_the_line(tmp_path, expect_error):
  path = tmp_path / "bad.tsv"
  path.write_bytes(b"Berlin\tB-LOC\n\xff\xfe\tO\n")
  with expect_error(path, f"{path}:2", "not valid UTF-8"):
    read_panx(path)


def test_gzip_bom_and_crlf(tmp_path):
  path = tmp_path / "dev-de.tsv.gz"
  path.write_bytes(gzip.compress("\ufeffBerlin\tB-LOC\r\nruft\tO\r\n".encode()))
  assert read_panx(path).examples == [
      TaggingExample("dev-de.tsv-0", ("Berlin", "ruft"), ("B-LOC", "O"))]


def test_stray_carriage_return_does_not_split_a_line(write):
  write("v1/tatoeba.deu-eng.deu", "Ein\rSatz.\n")
  folder = write("v1/tatoeba.deu-eng.eng", "One sentence.\n").parent
  assert read_tatoeba(folder, "de").examples[0].source == "Ein\rSatz."
