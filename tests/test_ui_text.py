"""ui.text.plain: text from outside reaches Markdown as the characters it holds."""

import string

from ui.text import SHORT, plain, quoted


def test_every_ascii_punctuation_mark_is_escaped_and_nothing_else_changes():
    text = string.punctuation + " café 猫 42"
    escaped = plain(text, 1000)
    expected = "".join("\\" + c for c in string.punctuation) + " café 猫 42"
    assert escaped == expected.replace("\\@", "\u200b\\@")  # and no e-mail autolink


def test_autolinks_cannot_form():
    """GFM finds autolinks after escapes are undone: the trigger itself is broken."""
    text = plain("see HTTPS://example.com, www.example.com and ada@example.com", 200)
    unescaped = text.replace("\\", "")
    for trigger in ("https://", "HTTPS://", "www.", "a@"):
        assert trigger not in unescaped, trigger
    assert unescaped.replace("\u200b", "") == "see HTTPS://example.com, www.example.com and ada@example.com"


def test_control_and_separator_characters_become_spaces_and_long_text_is_cut():
    assert plain("a\nb\r\x00c\x1b[31m\u2028d\te") == "a b  c \\[31m d e"
    cut = plain("A" * 10_000)
    assert len(cut) == SHORT and cut.endswith("…")
    assert quoted("[x](y)") == "“\\[x\\]\\(y\\)”"


def test_neighbour_labels_say_a_tie_as_a_tie():
    from ui.data import neighbour_labels

    assert neighbour_labels(["cat"] * 5 + ["dog"] * 3) == \
        "5 of 8 neighbours are labelled “cat”."
    assert neighbour_labels(["cat", "dog"] * 4) == \
        "A tie: 4 of 8 neighbours each are labelled “cat” and “dog”."
