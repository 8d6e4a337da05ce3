"""Reviews against a real SQLite file and a real PostgreSQL server: create, read, filter, edit,
delete, threads, HTML."""

import threading

import pytest

from reviews import VERDICTS, Review, ReviewError, ReviewStore
from reviews.report import html_report


def review(**changes) -> Review:
    base = dict(author="Ada", verdict=VERDICTS[0], note="Looks at the cat's face.",
                link="backbone=efficientnet_lite0&sample=chelsea&method=gradcam&class=285",
                backbone="efficientnet_lite0", weights="pretrained", image_hash="sample:chelsea",
                method="gradcam", target=285, target_name="Egyptian cat",
                thumbnail=b"\x89PNG fake", scores={"deletion_auc": 0.12, "pointing": True})
    return Review(**{**base, **changes})


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same tests on an SQLite file and on a real PostgreSQL server (tests/pg.py)."""
    if request.param == "sqlite":
        return ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    from tests.pg import fresh_database

    return ReviewStore(fresh_database(request.getfixturevalue("postgres")))


def test_create_read_filter_edit_delete(store, tmp_path):
    first = store.add(review())
    second = store.add(review(author="Grace", verdict=VERDICTS[2], backbone="resnet50",
                              note="Background texture, not the mug.", target_name="coffee mug"))
    assert first.id and first.created and store.get(first.id).scores["deletion_auc"] == 0.12
    assert [r.id for r in store.find()] == [second.id, first.id]  # newest first
    assert [r.id for r in store.find(backbone="resnet50")] == [second.id]
    assert [r.id for r in store.find(verdict=VERDICTS[0])] == [first.id]
    assert [r.id for r in store.find(author="grace")] == [second.id]
    assert [r.id for r in store.find(text="MUG")] == [second.id]
    assert store.authors() == ["Ada", "Grace"]
    edited = store.update(first.id, verdict=VERDICTS[3], note="Not sure any more.")
    assert edited.verdict == VERDICTS[3] and edited.updated >= edited.created
    store.delete(second.id)
    assert store.count() == 1
    with pytest.raises(ReviewError, match="no review"):
        store.get(second.id)
    again = ReviewStore(store.url)  # a restart keeps them
    assert again.get(first.id).note == "Not sure any more."
    if store.url.startswith("sqlite"):
        mode = again.engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"


@pytest.mark.parametrize(("changes", "message"), [
    ({"author": "  "}, "author's name is empty"),
    ({"verdict": "great"}, "verdict is one of"),
    ({"note": "x" * 20_001}, "longer than"),
])
def test_bad_reviews_are_refused(store, changes, message):
    with pytest.raises(ReviewError, match=message):
        store.add(review(**changes))


def test_eight_threads_lose_no_review(store):
    barrier = threading.Barrier(8)
    errors = []

    def writer(n: int) -> None:
        barrier.wait()
        for i in range(50):
            try:
                store.add(review(author=f"writer {n}", note=f"review {i}"))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and store.count() == 400
    for n in range(8):
        assert len(store.find(author=f"writer {n}")) == 50


def test_html_report_escapes_what_users_wrote(store):
    store.add(review(note="<script>document.title='pwned'</script> & <b>bold</b>",
                     author="<img src=x onerror=alert(1)>"))
    html = html_report(store.find())
    assert "<script>document" not in html and "&lt;script&gt;document.title" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "data:image/png;base64," in html and "open this view" in html


def test_the_same_review_twice_is_stored_once_even_when_two_clicks_race(store):
    first = store.add(review())
    again = store.add(review(author=" ada "))  # the same person, the same words, the same view
    assert again.id == first.id and store.count() == 1
    other = store.add(review(note="Something else."))
    assert other.id != first.id and store.count() == 2
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.add(review(note="race"))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.id for r in results}) == 1 and store.count() == 3
    with pytest.raises(ReviewError, match=f"Review #{first.id} says exactly this already"):
        store.update(other.id, note=first.note)
    assert store.update(first.id, note=first.note).updated == first.updated  # nothing changed


def test_a_database_from_before_the_fingerprint_is_carried_forward(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # schema version 1, as the first release made it
        db.executescript("""
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE reviews (id INTEGER PRIMARY KEY AUTOINCREMENT, created DATETIME,
                updated DATETIME, author VARCHAR(120), verdict VARCHAR(40), note TEXT,
                link TEXT, page VARCHAR(60), backbone VARCHAR(80), weights VARCHAR(80),
                image_hash VARCHAR(128), method VARCHAR(40), target INTEGER,
                target_name VARCHAR(200), thumbnail BLOB, scores TEXT);
            INSERT INTO reviews (created, updated, author, verdict, note, link, page, backbone,
                weights, image_hash, method, target, target_name, thumbnail, scores) VALUES
                ('2026-01-01 10:00:00', '2026-01-01 10:00:00', 'Ada', 'unsure', 'old', 'x=1',
                 'Explain', 'resnet18', 'pretrained', 'sample:chelsea', 'gradcam', 285,
                 'Egyptian cat', X'', '{}');""")
    store = ReviewStore(f"sqlite:///{path}")
    assert [r.note for r in store.find()] == ["old"]
    store.add(review())
    assert store.add(review()).id == store.find()[0].id and store.count() == 2


def test_a_deleted_review_is_kept_and_can_be_restored(store):
    kept = store.add(review())
    gone = store.add(review(author="Grace", note="Background, not the cat."))
    store.delete(gone.id)
    assert [r.id for r in store.find()] == [kept.id] and store.count() == 1
    deleted = store.find(deleted=True)
    assert [r.id for r in deleted] == [gone.id] and deleted[0].deleted is not None
    assert store.count(deleted=True) == 1 and store.authors() == ["Ada"]
    assert "Background" not in html_report(store.find())  # the export leaves it out
    with pytest.raises(ReviewError, match=r"no review \d+ \(deleted"):
        store.update(gone.id, note="edited after it was deleted")  # "deleted meanwhile?"
    store.restore(gone.id)
    assert [r.id for r in store.find()] == [gone.id, kept.id] and store.find(deleted=True) == []
    assert store.get(gone.id).deleted is None and store.get(gone.id).note == gone.note
    store.delete(gone.id)
    assert store.add(review(author="Grace", note="Background, not the cat.")).id == gone.id
    assert store.count() == 2  # saved again: the deleted one is restored, not duplicated


def test_a_read_only_store_lists_and_refuses_every_change(store, monkeypatch):
    first = store.add(review())
    monkeypatch.setenv("CNN_LENS_READONLY", "1")
    demo = ReviewStore(store.url)
    assert demo.readonly and [r.id for r in demo.find()] == [first.id]
    assert "Looks at the cat" in html_report(demo.find())
    for change in (lambda: demo.add(review(author="Eve")), lambda: demo.delete(first.id),
                   lambda: demo.update(first.id, note="defaced"),
                   lambda: demo.restore(first.id)):
        with pytest.raises(ReviewError, match="read-only demo"):
            change()
    assert store.get(first.id).note == first.note and store.count() == 1
    assert store.count(deleted=True) == 0


def test_a_review_of_a_detectors_box_records_the_box(store):
    """A box review keeps its box (to a tenth of a pixel) through the database and the HTML
    report; the same view of another box is another review; a malformed box is refused;
    reviews without a box keep the fingerprints they had."""
    from reviews.store import fingerprint

    box = review(backbone="animals_detector", page="Detector", method="hirescam", target=4,
                 target_name="cow at (12, 30, 98, 77)", box=(12.04, 30.0, 98.46, 77.0),
                 scores={"box_score": 1.71, "energy_in_box": 0.62, "box_area": 0.04})
    saved = store.add(box)
    assert store.get(saved.id).box == (12.0, 30.0, 98.5, 77.0)
    other = store.add(review(**{**box.__dict__, "box": (100, 30, 180, 77)}))
    assert other.id != saved.id and store.count() == 2
    assert store.add(box).id == saved.id  # the same box again is the same review
    assert "box (12, 30, 98, 77)" in html_report(store.find())
    assert "box (" not in html_report([store.add(review())])
    assert fingerprint(review()) == fingerprint(review(box=None))
    for bad in ((1, 2, 3), (10, 10, 5, 20), (0, 0, float("nan"), 4), ("a", 0, 1, 1)):
        with pytest.raises(ReviewError, match="box is four numbers"):
            store.add(review(box=bad))
