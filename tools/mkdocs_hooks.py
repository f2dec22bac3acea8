"""MkDocs hooks (mkdocs.yml ``hooks:``): the README as the home page, links that leave ``docs/``.

The Markdown in the repository is written to be read on a code host: the README links to
``docs/x.md``, the docs link to ``../rnncore/nn/cells.py#L57`` and to benchmark results. On the site:

* the README becomes ``index.md``, its links resolved from the repository root;
* a link to a repository file outside ``docs/`` points to a copy of it on the site:
  Python sources as a page of numbered, anchored lines (``#L57`` becomes that line's anchor, so
  strict mode checks the line exists), other files (images, Markdown results) copied as they are;
* a link to a file that does not exist is left alone, for ``mkdocs build --strict`` to refuse.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = "source"  # where copies of repository files go on the site
# inline links and images: [text](target) / ![alt](target), target without spaces
LINK = re.compile(r"(!?\[[^\]\n]*\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^(```|~~~)")

# site page (src_uri) -> its Markdown's location in the repository (posix, from the root)
_ORIGIN: dict[str, str] = {}


def _split(target: str) -> tuple[str, str]:
    path, _, frag = target.partition("#")
    return path, frag


def _external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith(("#", "/"))


def _links(markdown: str):
    """(match) for every inline link outside fenced code blocks."""
    fenced = False
    for line in markdown.splitlines(keepends=True):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            yield line, []
            continue
        yield line, ([] if fenced else list(LINK.finditer(line)))


def _resolve(origin: str, path: str) -> str | None:
    """The repository path a link in the file ``origin`` points at, or None if outside it."""
    full = posixpath.normpath(posixpath.join(posixpath.dirname(origin), path))
    return None if full.startswith("..") else full


def _site_path(repo_path: str) -> str:
    """Where the repository file ``repo_path`` is on the site (a docs_dir-relative URI)."""
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    if repo_path.endswith(".py"):
        return f"{SOURCE_DIR}/{repo_path}.md"
    return f"{SOURCE_DIR}/{repo_path}"


def _source_page(repo_path: str) -> str:
    """A Python file as a page: highlighted, one numbered line each with the anchor ``L-<n>``
    (raw HTML, whose ids strict mode sees when it checks a link's anchor)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    text = (ROOT / repo_path).read_text(encoding="utf-8")
    fmt = HtmlFormatter(linenos="inline", lineanchors="L", anchorlinenos=True)
    html = highlight(text, PythonLexer(), fmt)
    return f"# `{repo_path}`\n\n{html}\n"


def on_files(files: Files, config) -> Files:
    pages = {f.src_uri: f"docs/{f.src_uri}" for f in files if f.src_uri.endswith(".md")}
    if "index.md" not in pages:
        files.append(File.generated(config, "index.md", content=(ROOT / "README.md").read_text("utf-8")))
        pages["index.md"] = "README.md"
    _ORIGIN.clear()
    _ORIGIN.update(pages)
    todo = list(pages.items())
    while todo:  # copies of repository files, and the files their own links reach
        _, origin = todo.pop()
        if not origin.endswith(".md"):
            continue
        for _, matches in _links((ROOT / origin).read_text(encoding="utf-8")):
            for m in matches:
                path, _ = _split(m.group(2))
                if _external(m.group(2)) or not path:
                    continue
                repo_path = _resolve(origin, path)
                if repo_path is None or repo_path.startswith("docs/") or not (ROOT / repo_path).is_file():
                    continue
                uri = _site_path(repo_path)
                if uri in _ORIGIN or files.get_file_from_path(uri) is not None:
                    continue
                if repo_path.endswith(".py"):
                    files.append(File.generated(config, uri, content=_source_page(repo_path)))
                else:
                    files.append(File.generated(config, uri, abs_src_path=str(ROOT / repo_path)))
                _ORIGIN[uri] = repo_path
                todo.append((uri, repo_path))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    origin = _ORIGIN.get(page.file.src_uri)
    if origin is None:
        return markdown
    out = []
    for line, matches in _links(markdown):
        for m in reversed(matches):
            target = m.group(2)
            path, frag = _split(target)
            if _external(target) or not path:
                continue
            repo_path = _resolve(origin, path)
            if repo_path is None or not (ROOT / repo_path).is_file():
                if origin == "README.md" and repo_path and repo_path.startswith("docs/"):
                    pass  # a missing docs page: rewritten so that strict mode names it
                else:
                    continue  # outside the repository or missing: left for strict mode to refuse
            elif origin.startswith("docs/") and repo_path.startswith("docs/"):
                continue  # within docs/: already relative to the site
            new = posixpath.relpath(_site_path(repo_path), posixpath.dirname(page.file.src_uri) or ".")
            if repo_path.endswith(".py") and re.fullmatch(r"L\d+", frag):
                frag = f"L-{frag[1:]}"
            line = line[:m.start(2)] + new + (f"#{frag}" if frag else "") + line[m.end(2):]
        out.append(line)
    return "".join(out)
