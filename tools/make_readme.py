"""Write README.md from nbs/index.ipynb the way nbdev does, and check that README.md is up to date with it.
With Quarto on PATH this runs nbdev's own `nbdev_readme`. Without it (these machines cannot install Quarto) the index
goes through the same nbdev processors `nbdev_readme` runs (`proc_nbs`: frontmatter, hidden cells dropped, links) and
nbconvert writes GitHub markdown; the two READMEs differ only in formatting.
`--check` is renderer-independent, so either README passes: every markdown cell's text and every shown code cell's
source of the processed index must appear in README.md, compared as sequences of words (so line wrapping, table
padding and markdown escapes do not matter, a changed word does). Hidden cells are not required.
Usage: python tools/make_readme.py [--check] [--fallback]"""
import html, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from render_docs import processed, _exporter

def processed_index(nb_path=ROOT/'nbs'/'index.ipynb')->tuple:
    "The index notebook after nbdev's docs processors and Quarto's cell options, and its frontmatter"
    cwd = os.getcwd(); os.chdir(ROOT)
    try:
        with tempfile.TemporaryDirectory() as tmp: return processed(Path(nb_path), Path(tmp))
    finally: os.chdir(cwd)

def render(nb_path=ROOT/'nbs'/'index.ipynb')->str:
    "GitHub markdown of the index notebook without Quarto: nbdev's processors, then nbconvert"
    from nbconvert import MarkdownExporter
    nb, fm = processed_index(nb_path)
    nb.metadata.setdefault('language_info', {})['name'] = 'python'   # fenced as ```python
    body, _ = _exporter(MarkdownExporter).from_notebook_node(nb)
    head = f"# {fm.get('title', 'lesion_fastai')}\n\n" + (f"> {fm['description']}\n\n" if fm.get('description') else '')
    return head + re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'

def nbdev_readme():
    "README.md by nbdev itself (needs Quarto)"
    from nbdev.quarto import nbdev_readme as f
    cwd = os.getcwd(); os.chdir(ROOT)
    try: f.__wrapped__()
    finally: os.chdir(cwd)

def _words(s:str)->list: return re.findall(r'\w+', html.unescape(s))

def _contains(hay:list, needle:list)->bool:
    n = len(needle)
    return not n or any(hay[i:i+n] == needle for i in range(len(hay) - n + 1) if hay[i] == needle[0])

def stale_cells(readme:str, nb_path=ROOT/'nbs'/'index.ipynb')->list:
    "The texts of the processed index (title, markdown cells, shown code) that `readme` does not contain"
    nb, fm = processed_index(nb_path)
    texts = [str(fm.get('title', ''))] + [c.source for c in nb.cells if c.cell_type == 'markdown' or
                                          (c.cell_type == 'code' and 'remove_input' not in c.metadata.get('tags', []))]
    words = _words(readme)
    return [t for t in texts if not _contains(words, _words(t))]

if __name__ == '__main__':
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        bad = stale_cells(readme.read_text() if readme.exists() else '')
        if bad:
            first = ' '.join(bad[0].split())[:160]
            sys.exit(f'README.md is out of date with nbs/index.ipynb ({len(bad)} cell(s) differ, first: "{first}"): '
                     'run `python tools/make_readme.py`')
        print('README.md is up to date with nbs/index.ipynb')
    elif shutil.which('quarto') and '--fallback' not in sys.argv: nbdev_readme()
    else: readme.write_text(render())
