"""Render the documentation site locally, without Quarto, and check every page in headless Chromium.
Each notebook goes through nbdev's own docs processors exactly as `nbdev_docs` runs them before Quarto
(`nbdev.serve_drv.main` with `FilterDefaults`: frontmatter, show_doc rendered, hidden/exported cells removed, links),
then the Quarto cell options nbdev relies on (`echo`, `output: asis`, `include`) are applied and nbconvert writes the
HTML (images embedded as data URIs). The left sidebar comes from `nbs/sidebar.yml`, the file Quarto uses too
(`custom_sidebar = True` in settings.ini).
Usage: python tools/render_docs.py [--out _docs] [--check] [--screenshots DIR] [--sidebar-only]"""
import argparse, base64, html, json, os, re, select, shutil, subprocess, sys, tempfile, time
from dataclasses import dataclass
from pathlib import Path
import nbformat, yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')

# ---------------------------------------------------------------------------------------------------------- sidebar
def notebooks(nbs=NBS)->list:
    "The notebooks nbdev renders (its `nbglob`: names starting with `_` or `.` are skipped), relative to `nbs`"
    from nbdev.doclinks import nbglob
    return sorted(Path(p).relative_to(nbs).as_posix() for p in nbglob(nbs, func=Path))

def read_sidebar(path=NBS/'sidebar.yml')->list:
    "The sidebar as `[(section title or None, [notebook, ...]), ...]`, in Quarto's `website: sidebar: contents:` format"
    res = []
    for e in yaml.safe_load(Path(path).read_text())['website']['sidebar']['contents']:
        if isinstance(e, dict): res.append((e['section'], [c['href'] if isinstance(c, dict) else c for c in e['contents']]))
        else: res.append((None, [e['href'] if isinstance(e, dict) else e]))
    return res

def sidebar_problems(nbs=NBS)->list:
    "One line per notebook missing from the sidebar and per sidebar entry with no notebook"
    named = [n for _, ns in read_sidebar(nbs/'sidebar.yml') for n in ns]
    have = notebooks(nbs)
    return ([f'nbs/sidebar.yml names {n}, which is not in nbs/' for n in named if n not in have] +
            [f'{n} is not in nbs/sidebar.yml, so no sidebar links to it' for n in have if n not in named])

# ---------------------------------------------------------------------------------------------- nbdev + Quarto cells
def process(src:Path, dst:Path):
    "Run nbdev's docs processors on notebook `src`, writing `dst`, exactly as `nbdev_docs` does before Quarto"
    from nbdev.serve_drv import main
    from nbdev.processors import FilterDefaults
    dst.parent.mkdir(parents=True, exist_ok=True)
    try: main((Path(src), Path(dst), FilterDefaults))
    except Exception as e: raise RuntimeError(f'{Path(src).name}: nbdev could not process it for the docs: {e}') from e

_re_opt = re.compile(r'^\s*#\|\s*([\w-]+):?\s*(.*?)\s*$')
def cell_options(src:str)->tuple:
    "The `#| key: value` options at the top of a cell, and its code without them"
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_opt.match(lines[0])):
        opts[m[1]] = m[2].strip('"\''); lines.pop(0)
    return opts, '\n'.join(lines).strip('\n')

_re_attr_link = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}')
_re_fdiv = re.compile(r'^:::+\s*(?:\{([^}]*)\}|([\w-]+))?\s*$', re.M)
def _attrs(s): return ' '.join(f'class="{a[1:]}"' if a.startswith('.') else a for a in s.split(' ') if a and not a.startswith('#'))
def _fdiv(m): return f'\n<div class="{(m[1] or m[2] or "").replace(".", "")}">\n' if (m[1] or m[2]) else '\n</div>\n'
def quarto_md(md:str)->str:
    "Pandoc markdown that Quarto understands and plain markdown does not: `[t](u){attrs}` links, `:::` divs"
    md = re.sub(r'^' + _re_attr_link.pattern + r'[ \t]*$',     # a link alone on its line (show_doc's "source"): an HTML block
                lambda m: f'<div class="attr-link"><a href="{m[2]}" {_attrs(m[3])}>{m[1]}</a></div>', md, flags=re.M)
    md = _re_attr_link.sub(r'[\1](\2)', md)
    return _re_fdiv.sub(_fdiv, md)

def quarto_cells(nb)->dict:
    "Apply the Quarto options nbdev uses to the processed notebook `nb` in place; returns its frontmatter"
    fm, cells = {}, []
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            fm.update(yaml.safe_load(c.source.strip().split('---')[1]) or {}); continue
        if c.cell_type == 'markdown': c.source = quarto_md(c.source)
        if c.cell_type != 'code': cells.append(c); continue
        opts, c.source = cell_options(c.source)
        if opts.get('include') == 'false': continue
        if opts.get('output') == 'false': c.outputs = []
        if opts.get('output') == 'asis':
            mds = [''.join(o['data']['text/markdown']) for o in c.outputs if 'text/markdown' in o.get('data', {})]
            c.outputs = [o for o in c.outputs if 'text/markdown' not in o.get('data', {})]
            if opts.get('echo') != 'false' or c.outputs: cells.append(c)
            cells += [nbformat.v4.new_markdown_cell(quarto_md(m)) for m in mds]; continue
        if opts.get('echo') == 'false': c.metadata.setdefault('tags', []).append('remove_input')
        if c.source.strip() or c.outputs: cells.append(c)
    nb.cells = cells
    return fm

def processed(src:Path, tmp:Path)->tuple:
    "The notebook `src` as the docs show it, and its frontmatter"
    dst = Path(tmp)/Path(src).name
    process(src, dst)
    d = json.loads(dst.read_text())
    for c in d['cells']: c.pop('has_sd', None)            # nbdev's marker of added show_doc cells, not nbformat
    from nbformat.v4.rwbase import rejoin_lines
    nb = rejoin_lines(nbformat.from_dict(d))
    return nb, quarto_cells(nb)

def _exporter(cls, **kw):
    from nbconvert.preprocessors import TagRemovePreprocessor
    e = cls(exclude_input_prompt=True, exclude_output_prompt=True, **kw)
    e.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    return e

# ------------------------------------------------------------------------------------------------------------- pages
@dataclass
class Page:
    "One rendered notebook"
    nb:str; file:str; title:str; description:str; body:str; error:str=''

def _html_name(src):
    from nbdev.frontmatter import _nbpath2html
    return _nbpath2html(Path(src)).name

def nb_html(src:Path, tmp:Path)->Page:
    "Render notebook `src` into a `Page` (body HTML, images embedded)"
    from nbconvert import HTMLExporter
    try: nb, fm = processed(src, tmp)
    except RuntimeError as e:                             # the page says what failed; --check and the tests fail on it
        err = str(e) + (f'\n{e.__cause__.__cause__}' if e.__cause__ and e.__cause__.__cause__ else '')
        return Page(Path(src).name, _html_name(src), Path(src).stem, '', f'<pre class="error">{html.escape(err)}</pre>', err)
    e = _exporter(HTMLExporter, template_name='basic', embed_images=True)
    body, _ = e.from_notebook_node(nb, resources={'metadata': {'path': str(Path(src).parent)}})
    return Page(Path(src).name, fm.get('output-file', _html_name(src)), str(fm.get('title', Path(src).stem)),
                str(fm.get('description', '')), body)

def _links(body:str, pages:dict)->str:
    "Point links at the published site and at notebooks to the local pages"
    from nbdev.config import get_config
    cfg = get_config()
    site = cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/') + '/'
    body = body.replace(f'href="{site}', 'href="')
    return re.sub(r'href="([\w.-]+\.ipynb)(#[^"]*)?"',
                  lambda m: f'href="{pages[m[1]].file if m[1] in pages else m[1]}{m[2] or ""}"', body)

def sidebar_html(side:list, pages:dict, current:str)->str:
    "The left navigation, `current` page marked"
    def item(n):
        p = pages.get(n)
        if p is None: return f'<li class="missing">{html.escape(n)} (missing)</li>'
        cls = ' class="active"' if p.file == current else ''
        return f'<li><a href="{p.file}"{cls}>{html.escape(p.title)}</a></li>'
    out = []
    for title, ns in side:
        items = ''.join(item(n) for n in ns)
        out.append(f'<section><h2>{html.escape(title)}</h2><ul>{items}</ul></section>' if title else f'<ul>{items}</ul>')
    return '\n'.join(out)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – {site}</title>
<link rel="stylesheet" href="site.css"><link rel="stylesheet" href="styles.css">
</head><body>
<nav class="sidebar"><a class="site-title" href="index.html">{site}</a>
{sidebar}
</nav>
<main><header class="page-header"><h1 class="title">{title}</h1>{description}</header>
{body}
</main></body></html>
"""

SITE_CSS = """
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529; }
nav.sidebar { position: fixed; top: 0; bottom: 0; left: 0; width: 250px; overflow-y: auto; padding: 1.2rem 1rem;
  background: #f6f7f9; border-right: 1px solid #dee2e6; box-sizing: border-box; font-size: 0.92rem; }
nav.sidebar .site-title { display: block; font-weight: 700; font-size: 1.15rem; color: #2780e3; text-decoration: none;
  margin-bottom: 1rem; }
nav.sidebar h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: .06em; color: #6c757d; margin: 1.2rem 0 .3rem; }
nav.sidebar ul { list-style: none; margin: 0; padding: 0; }
nav.sidebar li a { display: block; padding: .2rem .5rem; border-radius: 4px; color: #343a40; text-decoration: none; }
nav.sidebar li a:hover { background: #e9ecef; }
nav.sidebar li a.active { background: #2780e3; color: #fff; }
nav.sidebar li.missing { color: #c00; padding: .2rem .5rem; }
main { margin-left: 250px; padding: 1.5rem 3rem 4rem; max-width: 1000px; }
h1.title { margin-bottom: .2rem; }
div.description p { margin: .2rem 0; }
.attr-link { float: right; font-size: smaller; }
header.page-header { margin-bottom: 1.5rem; border-bottom: 1px solid #dee2e6; padding-bottom: .8rem; }
a { color: #2780e3; }
pre, code { font-family: SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.86em; }
code { background: #f3f4f6; padding: .05em .25em; border-radius: 3px; }
pre code { background: none; padding: 0; }
div.cell { margin: 0 0 1rem; }
div.prompt { display: none; }
div.inner_cell, div.input, div.input_area, div.output_wrapper, div.output_area { min-width: 0; max-width: 100%; }
div.input_area { overflow-x: auto; }
div.output_subarea pre { margin: .3rem 0 0 .8rem; padding: .3rem .8rem; border-left: 2px solid lightsalmon;
  overflow-x: auto; white-space: pre-wrap; }
div.output_subarea { overflow-x: auto; }
div.output_png img, div.output_jpeg img, div.text_cell_render img { max-width: 100%; height: auto; }
div.output_stderr pre { background: #fff5f5; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #dee2e6; padding: .25rem .6rem; text-align: left; vertical-align: top; }
thead th, table.dataframe th { background: #f1f3f5; }
blockquote { margin: .5rem 0; padding: .2rem 1rem; border-left: 4px solid #dee2e6; color: #495057; }
.anchor-link { visibility: hidden; margin-left: .3rem; text-decoration: none; }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link { visibility: visible; }
hr { border: 0; border-top: 1px solid #dee2e6; margin: 1.8rem 0 .8rem; }
@media (max-width: 800px) { nav.sidebar { position: static; width: auto; border-right: 0; } main { margin-left: 0; padding: 1rem; } }
"""

def render(out=ROOT/'_docs', nbs=NBS)->list:
    "Render every notebook in `nbs` into `out` (one HTML page each, sidebar from `nbs/sidebar.yml`); returns the `Page`s"
    from pygments.formatters import HtmlFormatter
    from nbconvert.filters import markdown2html
    out, nbs = Path(out), Path(nbs)
    out.mkdir(parents=True, exist_ok=True)
    side = read_sidebar(nbs/'sidebar.yml')
    cwd = os.getcwd(); os.chdir(ROOT)                     # nbdev finds settings.ini from here
    try:
        with tempfile.TemporaryDirectory() as tmp: pages = {n: nb_html(nbs/n, Path(tmp)) for n in notebooks(nbs)}
    finally: os.chdir(cwd)
    for p in pages.values():
        desc = f'<div class="description">{markdown2html(p.description)}</div>' if p.description else ''
        (out/p.file).write_text(PAGE.format(title=html.escape(p.title), site='lesion_fastai', description=desc,
                                            sidebar=sidebar_html(side, pages, p.file), body=_links(p.body, pages)))
    (out/'site.css').write_text(SITE_CSS + HtmlFormatter(style='default').get_style_defs('.highlight'))
    if (nbs/'styles.css').exists(): shutil.copy(nbs/'styles.css', out/'styles.css')
    return list(pages.values())

# ----------------------------------------------------------------------------------------------- headless Chromium
def find_browser():
    "The first Chromium-family browser on PATH, or None"
    return next((b for b in map(shutil.which, BROWSERS) if b), None)

class Chromium:
    "A headless Chromium driven over its DevTools pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out), no extra package"
    def __init__(self, exe=None, timeout=60):
        exe = exe or find_browser()
        if not exe: raise FileNotFoundError(f'none of {", ".join(BROWSERS)} is on PATH')
        import fcntl
        self.profile, self.timeout, self.id, self.buf, self.msgs = tempfile.mkdtemp(), timeout, 0, b'', []
        r_in, w_in = os.pipe(); r_out, w_out = os.pipe()
        hi = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (r_in, w_out)]   # out of the way of 3 and 4
        def _fds(): os.dup2(hi[0], 3); os.dup2(hi[1], 4)
        flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--hide-scrollbars',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync', '--mute-audio',
                 '--disable-dev-shm-usage', f'--user-data-dir={self.profile}', '--remote-debugging-pipe', 'about:blank']
        self.proc = subprocess.Popen([exe, *flags], preexec_fn=_fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (r_in, w_out, *hi): os.close(fd)
        self.w, self.r = w_in, r_out
        self.send('Browser.getVersion')

    def send(self, method, session=None, **params):
        "Send one DevTools command and return its result"
        self.id += 1; i = self.id
        msg = {'id': i, 'method': method, 'params': params}
        if session: msg['sessionId'] = session
        os.write(self.w, json.dumps(msg).encode() + b'\0')
        m = self.wait(lambda m: m.get('id') == i)
        if 'error' in m: raise RuntimeError(f'{method}: {m["error"]}')
        return m.get('result', {})

    def wait(self, pred):
        "The first DevTools message that satisfies `pred` (kept messages included)"
        end = time.time() + self.timeout
        while True:
            for k, m in enumerate(self.msgs):
                if pred(m): return self.msgs.pop(k)
            left = end - time.time()
            if left <= 0 or self.proc.poll() is not None: raise TimeoutError('Chromium did not answer')
            if select.select([self.r], [], [], left)[0]:
                chunk = os.read(self.r, 1 << 20)
                if not chunk: raise RuntimeError('Chromium closed its DevTools pipe')
                *done, self.buf = (self.buf + chunk).split(b'\0')
                self.msgs += [json.loads(d) for d in done if d]

    def check(self, url, shot=None, width=1280, max_height=16000)->dict:
        "Load `url`, wait for it and its images; title, heading, images found/loaded; full-page PNG to `shot`"
        t = self.send('Target.createTarget', url='about:blank')['targetId']
        s = self.send('Target.attachToTarget', targetId=t, flatten=True)['sessionId']
        try:
            self.send('Page.enable', s)
            self.send('Emulation.setDeviceMetricsOverride', s, width=width, height=900, deviceScaleFactor=1, mobile=False)
            self.send('Page.navigate', s, url=url)
            self.wait(lambda m: m.get('method') == 'Page.loadEventFired' and m.get('sessionId') == s)
            r = self.send('Runtime.evaluate', s, expression=_PAGE_JS, awaitPromise=True, returnByValue=True)
            if 'exceptionDetails' in r: raise RuntimeError(f'{url}: {r["exceptionDetails"]}')
            res = r['result']['value']
            if shot:
                h = min(res['height'], max_height)
                self.send('Emulation.setDeviceMetricsOverride', s, width=width, height=h, deviceScaleFactor=1, mobile=False)
                png = self.send('Page.captureScreenshot', s, format='png')['data']
                Path(shot).write_bytes(base64.b64decode(png))
            return res
        finally:
            self.msgs = [m for m in self.msgs if m.get('sessionId') != s]
            self.send('Target.closeTarget', targetId=t)

    def close(self):
        "Stop the browser and remove its profile"
        try: self.proc.terminate(); self.proc.wait(10)
        except Exception: self.proc.kill()
        for fd in (self.w, self.r):
            try: os.close(fd)
            except OSError: pass
        shutil.rmtree(self.profile, ignore_errors=True)
    def __enter__(self): return self
    def __exit__(self, *a): self.close()

_PAGE_JS = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  const h = document.querySelector('h1');
  return {title: document.title, heading: h ? h.textContent.trim() : '', images: imgs.length,
          loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
          broken: imgs.filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src').slice(0, 100)),
          height: Math.ceil(Math.max(document.documentElement.scrollHeight, document.body.scrollHeight))};
})()"""

def check_site(out, pages:list, shots=None, exe=None)->list:
    "Open every page in headless Chromium; one line per page; returns the failures"
    out, fails = Path(out).resolve(), []
    if shots: Path(shots).mkdir(parents=True, exist_ok=True)
    with Chromium(exe) as b:
        for p in pages:
            shot = Path(shots)/(Path(p.file).stem + '.png') if shots else None
            try: r = b.check((out/p.file).as_uri(), shot)
            except Exception as e: r = {'error': str(e), 'images': 0, 'loaded': 0, 'broken': [], 'title': '', 'heading': ''}
            bad = ([r['error']] if 'error' in r else []) + [f'image not loaded: {s}' for s in r['broken']]
            if not r['title'] or not r['heading']: bad.append('no title or heading')
            if p.error: bad.append('nbdev could not process the notebook (see above): the page shows the error')
            print(f"{'FAIL' if bad else 'ok  '} {p.file:34} {r['loaded']}/{r['images']} images loaded  "
                  f"h1 {r['heading'][:40]!r}" + (f"  screenshot {shot}" if shot else '') + ''.join(f'\n     {b_}' for b_ in bad))
            if bad: fails.append(f'{p.file}: ' + '; '.join(bad))
    return fails

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_docs'), help='site folder (default: _docs, the doc_path of settings.ini)')
    ap.add_argument('--check', action='store_true', help='open every page in headless Chromium; exit 1 on any failure')
    ap.add_argument('--screenshots', default=None, help='folder for one full-page PNG per page (default with --check: _screenshots)')
    ap.add_argument('--sidebar-only', action='store_true', help='only check nbs/sidebar.yml against the notebooks')
    a = ap.parse_args()
    problems = sidebar_problems()
    for pr in problems: print(f'sidebar: {pr}')
    if a.sidebar_only: sys.exit(1 if problems else 0)
    t0 = time.time()
    pages = render(a.out)
    print(f'rendered {len(pages)} pages into {a.out} in {time.time()-t0:.0f} s')
    for p in pages:
        if p.error: problems.append(p.error); print(f'FAILED {p.nb}: {p.error}')
    if a.check or a.screenshots:
        fails = check_site(a.out, pages, a.screenshots or str(ROOT/'_screenshots'))
        problems += fails
        print(f'{len(pages)-len(fails)}/{len(pages)} pages open with their images and a heading')
    if a.check and problems: sys.exit(1)
