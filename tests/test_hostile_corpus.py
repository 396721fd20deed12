"""Replays fixtures/hostile/: inputs a ``vmstate hostile`` campaign kept,
one per kind of refusal.  Each must still be refused with the same error
class at the same offset (and field path), and still leave the destination
untouched; a change here is a change in what the loader tells a user about a
bad stream, so it must be deliberate (re-run the campaign with ``--out
fixtures/hostile`` to re-record)."""
import pytest

from vmstate.fuzz.hostile import corpus

CORPUS = corpus.read_corpus()


def test_the_corpus_covers_many_kinds_of_refusal_and_every_file_is_indexed():
    classes = {entry["error"] for entry, _ in CORPUS}
    assert len(CORPUS) >= 40
    assert {"InvalidField", "MalformedStream", "TruncatedStream", "TrailingData", "NotAStream",
            "UnknownSection"} <= classes
    on_disk = {p.name for p in corpus.CORPUS.iterdir() if p.name != "index.json"}
    assert on_disk == {entry["file"] for entry, _ in CORPUS}


@pytest.mark.parametrize("entry, data", CORPUS, ids=[entry["file"] for entry, _ in CORPUS])
def test_each_kept_input_is_still_refused_the_same_way(entry, data):
    out = corpus.replay(data, entry["options"], entry.get("kind", "stream"))
    assert out.violation is None, f"{out.violation}: {out.detail}"
    assert out.error is not None, "accepted: the input is now valid"
    assert out.signature == (entry["error"], entry["offset"], entry["path"], entry.get("line"))


def test_the_corpus_holds_snapshot_files_traces_and_whole_qemu_streams_too():
    kinds = {entry.get("kind", "stream") for entry, _ in CORPUS}
    assert kinds == {"stream", "snapshot", "trace", "qemu"}
