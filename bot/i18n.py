"""Translation catalogs: the words marked in templates/, and the az and ru catalogs in locales/.

Every message the bot sends is a template in templates/ whose words are marked `_("…")` or
`ngettext("…", "…", n)`. English is the source; locales/<lang>/LC_MESSAGES/messages.po holds each
other language. bot/render.py reads the .po files at start (no compiled .mo in git).

Updating the catalogs after changing or adding a template:

    python -m bot.i18n extract    # templates → locales/messages.pot; new words added to az and ru
                                  # with an empty translation, words no template uses any more dropped
    # translate every empty msgstr in locales/az/LC_MESSAGES/messages.po and locales/ru/…
    python -m bot.i18n check      # what is still missing or wrong; tests/test_i18n.py fails on the same

The same with Babel's own command line: `pybabel extract -F babel.cfg -o locales/messages.pot .`
then `pybabel update -i locales/messages.pot -d locales --no-fuzzy-matching`.

Notes for translators: keep every %(name)s placeholder (a missing or extra one is an error, as
`check` says); write a literal percent sign as %%; translations may use Telegram's HTML tags only
where the English does (none do now). Russian has three plural forms (1 / 2–4 / 5+), Azerbaijani two.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from bot.render import DEFAULT_LANGUAGE, LANGUAGES, LOCALES, ROOT, TEMPLATES

POT = LOCALES / "messages.pot"
METHOD_MAP = [("templates/**.html", "jinja2.ext:babel_extract")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "True", "lstrip_blocks": "True"}}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def translated_languages() -> list[str]:
    return [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]


def po_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "messages.po"


def extract() -> Catalog:
    """Every message marked in the templates, with where it is used."""
    catalog = Catalog(project="Blockwatch", version="1", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        ROOT, METHOD_MAP, OPTIONS, directory_filter=lambda path: Path(path).resolve() in (ROOT, TEMPLATES)
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def load(lang: str) -> Catalog:
    with po_path(lang).open("rb") as handle:
        return read_po(handle, locale=lang)


def _ids(message) -> tuple[str, ...]:
    return message.id if isinstance(message.id, tuple) else (message.id,)


def _key(message) -> str:
    return _ids(message)[0]


def problems(lang: str, source: Catalog | None = None) -> list[str]:
    """What is wrong with a language's catalog against the templates: missing, empty, fuzzy, bad placeholders."""
    source = source or extract()
    if not po_path(lang).is_file():
        return [f"{lang}: no catalog at {po_path(lang).relative_to(ROOT)}"]
    catalog = load(lang)
    found = []
    for message in source:
        if not message.id:
            continue
        translation = catalog.get(message.id, context=message.context)
        if translation is None:
            found.append(f"{lang}: missing {_key(message)!r}")
            continue
        strings = translation.string if isinstance(translation.string, tuple) else (translation.string,)
        if not all(strings) or len(strings) < catalog.num_plurals and isinstance(message.id, tuple):
            found.append(f"{lang}: untranslated {_key(message)!r}")
            continue
        if translation.fuzzy:
            found.append(f"{lang}: fuzzy (needs review) {_key(message)!r}")
        wanted = set().union(*(PLACEHOLDER.findall(text) for text in _ids(message)))
        for text in strings:
            have = set(PLACEHOLDER.findall(text))
            # a plural form may leave out %(num)s (Russian "одна"); no other placeholder may differ
            if have - wanted or (wanted - have) - {"num"}:
                found.append(f"{lang}: placeholders {sorted(have)} ≠ {sorted(wanted)} in {text!r}")
            if re.search(r"%(?!\(\w+\)s|%)", text):
                found.append(f"{lang}: a lone % (write %%) in {text!r}")
    return found


def update() -> None:
    """Write the .pot and merge it into each language's .po (new words empty, old translations kept)."""
    source = extract()
    POT.parent.mkdir(parents=True, exist_ok=True)
    with POT.open("wb") as handle:
        write_po(handle, source, width=100, omit_header=False, sort_output=False)
    for lang in translated_languages():
        path = po_path(lang)
        if path.is_file():
            catalog = load(lang)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, project="Blockwatch", version="1", charset="utf-8")
        catalog.update(source, no_fuzzy_matching=True)
        catalog.obsolete.clear()  # dropped words stay in git history, not in the catalog
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, sort_output=False)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "extract":
        update()
        print(f"wrote {POT.relative_to(ROOT)} and updated {', '.join(translated_languages())}")
        command = "check"
    if command == "check":
        source = extract()
        found = [problem for lang in translated_languages() for problem in problems(lang, source)]
        for problem in found:
            print(problem)
        print(f"{len(source)} messages; {len(found)} problems")
        return 1 if found else 0
    print("usage: python -m bot.i18n [extract | check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
