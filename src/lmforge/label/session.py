"""`lmforge label RUN`: a person labels documents one at a time in the terminal.

One key per label, s skips, u undoes the last answer or skip, n writes a note, q quits. Every
answer is appended to labels/human-LABELER.jsonl and flushed before the next record shows, so an
interrupted session loses nothing and the next one resumes at the first record not yet answered.
The screen is a prompt_toolkit application; `Session` holds the logic, so a test (or another
front end) can drive it without a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.label.store import Replay, append, now, read_log

ACTIONS = {"s": "skip", "u": "undo", "n": "note", "q": "quit"}
SHOWN_CHARS = 1500
META_FIELDS = ("id", "title", "author", "edition", "source", "split")


def label_keys(labels: Sequence[str], keys: Sequence[tuple[str, str]] | None = None) -> dict[str, str]:
    """key -> label: the given keys, else 1..9 then a..z in label order. A key used twice or
    taken by an action is refused with both uses named."""
    if len(labels) < 2:
        raise LmforgeError(f"a label session needs at least two labels, got {list(labels)}",
                           "name them: --labels shakespeare,milton (or label.labels in the config)")
    if keys is None:
        free = [k for k in "123456789abcdefghijklmoprtvwxyz" if k not in ACTIONS]
        if len(labels) > len(free):
            raise LmforgeError(f"{len(labels)} labels, but only {len(free)} keys", "use fewer labels")
        return dict(zip(free, labels))
    out: dict[str, str] = {}
    for key, lab in keys:
        if len(key) != 1:
            raise LmforgeError(f"label key {key!r} for '{lab}' is not one character", "give each label one key, e.g. 1=war")
        if key in ACTIONS:
            raise LmforgeError(f"key '{key}' for label '{lab}' is taken by the action '{ACTIONS[key]}'",
                               f"choose another key; taken: {', '.join(f'{k}={v}' for k, v in ACTIONS.items())}")
        if key in out:
            raise LmforgeError(f"key '{key}' is given to two labels: '{out[key]}' and '{lab}'", "give each label its own key")
        if lab not in labels:
            raise LmforgeError(f"key '{key}' names '{lab}', which is not a label", f"labels: {', '.join(labels)}")
        out[key] = lab
    missing = [lab for lab in labels if lab not in out.values()]
    if missing:
        raise LmforgeError(f"no key for label(s) {missing}", "give every label a key")
    return out


class Session:
    """Which record is next, and what each key press writes."""

    def __init__(self, records: Sequence[Mapping[str, Any]], keys: Mapping[str, str], log: Path, labeler: str,
                 first: Sequence[str] = ()) -> None:
        rank = {rid: i for i, rid in enumerate(first)}  # an active-learning queue: these ids first, in order
        self.records = sorted(records, key=lambda r: rank.get(str(r.get("id")), len(rank)))
        self.keys = dict(keys)
        self.log = log
        self.labeler = labeler
        self.state: Replay = read_log(log)
        self.message = ""

    def pending(self) -> list[Mapping[str, Any]]:
        done = set(self.state.labels) | self.state.skipped
        return [r for r in self.records if str(r.get("id")) not in done]

    def current(self) -> Mapping[str, Any] | None:
        rest = self.pending()
        return rest[0] if rest else None

    def _write(self, entry: dict[str, Any]) -> None:
        append(self.log, {**entry, "by": self.labeler, "at": now()})
        self.state = read_log(self.log)

    def answer(self, label: str) -> None:
        rec = self.current()
        if rec is None:
            return
        self._write({"id": str(rec.get("id")), "label": label, "source": "human", "confidence": 1.0})
        self.message = f"{rec.get('id')}: {label}"

    def press(self, key: str) -> bool:
        """Handle one key; False when the session should end."""
        if key in self.keys:
            self.answer(self.keys[key])
        elif key == "s" and self.current() is not None:
            rid = str(self.current().get("id"))  # type: ignore[union-attr]
            self._write({"id": rid, "action": "skip"})
            self.message = f"{rid}: skipped"
        elif key == "u":
            if self.state.history:
                last = self.state.history[-1]
                self._write({"id": last, "action": "undo"})
                self.message = f"{last}: undone"
            else:
                self.message = "nothing to undo"
        elif key == "q":
            return False
        return True

    def note(self, text: str) -> None:
        rec = self.current()
        if rec is not None and text.strip():
            self._write({"id": str(rec.get("id")), "action": "note", "note": text.strip()})
            self.message = f"{rec.get('id')}: note saved"

    def body(self) -> str:
        """The record: progress, metadata, note, text."""
        rec = self.current()
        total, left = len(self.records), len(self.pending())
        head = f"record {total - left + 1} of {total}  ({len(self.state.labels)} labelled, {len(self.state.skipped)} skipped)"
        if rec is None:
            return f"{head}\n\nall records are answered."
        meta = "  ".join(f"{k}: {rec[k]}" for k in META_FIELDS if k in rec)
        text = str(rec.get("text", ""))
        shown = text[:SHOWN_CHARS] + (f"\n… ({len(text) - SHOWN_CHARS} more characters)" if len(text) > SHOWN_CHARS else "")
        note = self.state.notes.get(str(rec.get("id")))
        return f"{head}\n{meta}\n" + (f"note: {note}\n" if note else "") + f"\n{shown}"

    def footer(self) -> str:
        """The keys and the last thing that happened: always on screen, below the text."""
        keys = "   ".join(f"[{k}] {v}" for k, v in self.keys.items())
        return f"{keys}\n[s] skip   [u] undo   [n] note   [q] quit\n{self.message}"

    def screen(self) -> str:
        return f"{self.body()}\n\n{self.footer()}"


def build_app(session: Session, input: Any = None, output: Any = None) -> Any:
    """The prompt_toolkit screen over a session: the record, a note field shown on n, the keys."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
    from prompt_toolkit.layout.controls import FormattedTextControl
    from prompt_toolkit.widgets import TextArea

    noting = {"on": False}
    body = Window(FormattedTextControl(lambda: session.body()), wrap_lines=True)
    footer = Window(FormattedTextControl(lambda: session.footer()), height=3, style="reverse")
    note = TextArea(height=1, prompt="note (Enter saves): ", multiline=False)
    in_note = Condition(lambda: noting["on"])
    kb = KeyBindings()

    def bind(key: str) -> None:
        @kb.add(key, filter=~in_note)
        def _(event: Any) -> None:
            if not session.press(key):
                event.app.exit()

    for key in [*session.keys, "s", "u", "q"]:
        bind(key)

    @kb.add("n", filter=~in_note)
    def _open_note(event: Any) -> None:
        if session.current() is not None:
            noting["on"] = True
            event.app.layout.focus(note)

    @kb.add("enter", filter=in_note)
    def _save_note(event: Any) -> None:
        session.note(note.text)
        note.text = ""
        noting["on"] = False
        event.app.layout.focus(body)

    @kb.add("c-c")
    def _quit(event: Any) -> None:
        event.app.exit()

    root = HSplit([body, ConditionalContainer(note, filter=in_note), footer])
    return Application(layout=Layout(root, focused_element=body), key_bindings=kb, full_screen=True,
                       input=input, output=output)
