"""Variable expansion and word splitting in Dockerfile instructions, as the builder's shell lexer does it.

Not a shell: quotes group and are removed, the escape character (`\\` or the `# escape=` one) protects
the next character, and `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`, `${NAME:?word}` expand
from the build's environment. `${NAME-word}`, `${NAME+word}` and `${NAME?word}` test set-ness rather than
emptiness, as POSIX and newer BuildKit do (20.10's classic builder refused them; accepting more is
harmless). Nothing else (no command substitution, no globbing, no `$((...))`).
"""

from __future__ import annotations

import json

__all__ = ["Lex", "ShellWordError"]

_SPECIAL = frozenset("@*#?-$!0")
_EOF = ""


class ShellWordError(ValueError):
    """A word that cannot be expanded; the message is the builder's."""


class _Words:
    """Collects the words of ProcessWords: unquoted whitespace (also from expansions) splits them."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_expanded(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scanner:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    # --- the grammar ------------------------------------------------------------------------------

    def until(self, stop: str) -> tuple[str, list[str]]:
        """Process up to `stop` (consumed) or the end ("" as stop); returns (word, words)."""
        out: list[str] = []
        words = _Words()
        while (ch := self.peek()) != _EOF:
            if stop and ch == stop:
                self.next()
                return "".join(out), words.result()
            if ch == "'":
                text = self.single_quoted()
                words.add_raw(text)
            elif ch == '"':
                text = self.double_quoted()
                words.add_raw(text)
            elif ch == "$":
                text = self.dollar()
                words.add_expanded(text)
            else:
                self.next()
                if ch == self.escape:
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                text = ch
            out.append(text)
        if stop:
            raise ShellWordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.result()

    def single_quoted(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ShellWordError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise ShellWordError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                following = self.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            digits = []
            while self.peek().isdigit():
                digits.append(self.next())
            return "".join(digits)
        if ch in _SPECIAL:
            return self.next()
        out = []
        while (ch := self.peek()) and (ch.isalnum() or ch == "_"):
            out.append(self.next())
        return "".join(out)

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.lookup(name) or ""
        self.next()  # the {
        if self.peek() == _EOF:
            raise ShellWordError("syntax error: missing '}'")
        if self.peek() in ("{", "}", ":"):
            raise ShellWordError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.lookup(name) or ""
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            if colon:
                raise ShellWordError(f"unsupported modifier ({modifier}) in substitution")
            raise ShellWordError("missing ':' in substitution")
        try:
            word, _ = self.until("}")
        except ShellWordError:
            if self.peek() == _EOF:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value = self.lookup(name)
        # With the colon, an empty value counts as unset.
        unset = value is None or (colon and value == "")
        if modifier == "-":
            return word if unset else (value or "")
        if modifier == "+":
            return "" if unset else word
        if value is None:
            raise ShellWordError(f"{name}: {word or 'is not allowed to be unset'}")
        if unset:
            raise ShellWordError(f"{name}: {word or 'is not allowed to be empty'}")
        return value


class Lex:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def _run(self, text: str, env: dict[str, str] | list[str]) -> tuple[str, list[str]]:
        if isinstance(env, list):
            env = env_map(env)
        try:
            return _Scanner(text, env, self.escape).until("")
        except ShellWordError as e:
            raise ShellWordError(f"failed to process {go_quote(text)}: {e}") from None

    def process_word(self, text: str, env: dict[str, str] | list[str]) -> str:
        """One word: quotes removed, variables expanded, whitespace kept."""
        return self._run(text, env)[0]

    def process_words(self, text: str, env: dict[str, str] | list[str]) -> list[str]:
        """Words split on unquoted whitespace (EXPOSE $PORTS gives several)."""
        return self._run(text, env)[1]


def env_map(env: list[str]) -> dict[str, str]:
    """KEY=value entries as a dict; the last entry of a key wins, as in the builder."""
    out: dict[str, str] = {}
    for entry in env:
        key, sep, value = entry.partition("=")
        out[key] = value if sep else ""
    return out


def go_quote(text: str) -> str:
    """Go's %q for the texts the builder quotes in messages (close enough for ASCII)."""
    return json.dumps(text, ensure_ascii=False)
