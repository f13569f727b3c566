"""Write README.md from nbs/index.ipynb, as `nbdev_readme` does but without Quarto (which these machines cannot install).
Hidden cells are dropped, cell directives removed, code shown as Python blocks with their text outputs.
`python tools/make_readme.py --check` exits 1 when README.md is out of date."""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]

def _directives(src): return {m.group(1) for m in re.finditer(r'^#\|\s*([\w-]+)', src, re.M)}

def render(nb_path=ROOT/'nbs'/'index.ipynb')->str:
    "Markdown of the index notebook"
    nb, out = nbformat.read(nb_path, as_version=4), []
    for c in nb.cells:
        src = c.source
        if c.cell_type == 'markdown':
            out.append(re.sub(r'^> (.*)$', r'> \1', src.strip(), flags=re.M)); continue
        if {'hide', 'exporti'} & _directives(src) or '#| echo: false' in src: continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        if code: out.append(f"```python\n{code}\n```")
        for o in c.get('outputs', []):
            text = o.get('text') or o.get('data', {}).get('text/plain')
            if text: out.append('    ' + ''.join(text).rstrip().replace('\n', '\n    '))
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    md, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != md:
            sys.exit('README.md is out of date with nbs/index.ipynb: run `python tools/make_readme.py`')
    else: readme.write_text(md)
