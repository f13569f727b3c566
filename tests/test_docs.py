"""The documentation site and README: every notebook renders (nbdev's processors + nbconvert) to a page whose images are
embedded, the sidebar separates Tutorials from the API reference, pages open in headless Chromium (where one is on
PATH) and README.md is up to date with nbs/index.ipynb."""
import base64, io, re, sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
import nbformat, pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import render_docs as rd, make_readme as mr

TUTORIALS = ['50_tutorial_segmentation.ipynb', '51_tutorial_ensemble.ipynb', '52_tutorial_classification.ipynb',
             '53_tutorial_isic2018.ipynb']

def _png(colour, size=(40, 30)):
    b = io.BytesIO(); Image.new('RGB', size, colour).save(b, 'PNG'); return b.getvalue()

def _images(html): return re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', html)

def _image_ok(src, folder):
    if src.startswith('data:image/'): return len(base64.b64decode(src.split(',', 1)[1])) > 0
    return (folder/src).is_file()

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    """The whole site, rendered once, in a process of its own: nbdev's processors run the notebooks' exported cells, whose
    `@patch`es would replace fastai methods in this test process with copies bound to other class objects"""
    out = tmp_path_factory.mktemp('site')
    with ProcessPoolExecutor(1, mp_context=get_context('spawn')) as ex: return out, ex.submit(rd.render, out).result()

@pytest.fixture(scope='module')
def picture_site(tmp_path_factory):
    "A small site with no image on one page and fourteen on another: outputs, a file beside the notebook, an attachment"
    nbs, out = tmp_path_factory.mktemp('nbs'), tmp_path_factory.mktemp('picsite')
    (nbs/'img').mkdir(); (nbs/'img'/'beside.png').write_bytes(_png('blue'))
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Home\n\n> No pictures here'),
                                                   nbformat.v4.new_markdown_cell('Just text.')]), nbs/'index.ipynb')
    outs = [nbformat.v4.new_output('display_data', data={'image/png': base64.b64encode(_png((20*i, 0, 0))).decode(),
                                                         'text/plain': '<Figure>'}) for i in range(12)]
    att = nbformat.v4.new_markdown_cell('A file beside the notebook ![beside](img/beside.png) and an attachment '
                                        '![att](attachment:att.png)')
    att.attachments = {'att.png': {'image/png': base64.b64encode(_png('green')).decode()}}
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Pictures\n\n> Many of them'), att,
        nbformat.v4.new_code_cell('show_batch()', outputs=outs)]), nbs/'01_pictures.ipynb')
    (nbs/'sidebar.yml').write_text('website:\n  sidebar:\n    contents:\n      - index.ipynb\n'
                                   '      - section: Tutorials\n        contents:\n          - 01_pictures.ipynb\n')
    return out, rd.render(out, nbs)

def test_every_notebook_has_a_page(site):
    out, pages = site
    assert sorted(p.nb for p in pages) == rd.notebooks()
    assert [p.error.splitlines()[0] for p in pages if p.error] == []     # nbdev_docs would stop on these too
    for p in pages:
        html = (out/p.file).read_text()
        assert f'<h1 class="title">' in html and p.title, p.file
        assert all(_image_ok(s, out) for s in _images(html)), p.file

def test_sidebar_separates_tutorials_from_api(site):
    assert rd.sidebar_problems() == []
    side = dict(rd.read_sidebar())
    assert side['Tutorials'] == TUTORIALS
    api = side['API reference']
    modules = [n for n in rd.notebooks() if '#| default_exp' in (rd.NBS/n).read_text()]
    assert sorted(api) == sorted(modules) and api == sorted(api) and '80_demo.ipynb' in api
    out, pages = site
    nav = (out/'index.html').read_text().split('<nav class="sidebar">')[1].split('</nav>')[0]
    tut, ref = nav.split('<h2>Tutorials</h2>')[1].split('<h2>API reference</h2>')
    names = {p.nb: p.file for p in pages}
    assert all(f'href="{names[n]}"' in tut for n in TUTORIALS)
    assert all(f'href="{names[n]}"' in ref for n in api) and not any(f'href="{names[n]}"' in ref for n in TUTORIALS)

def test_images_embedded(picture_site):
    out, pages = picture_site
    pics = (out/'pictures.html').read_text()
    srcs = _images(pics)
    assert len(srcs) == 14 and all(s.startswith('data:image/png;base64,') for s in srcs)
    assert _images((out/'index.html').read_text()) == []

@pytest.mark.skipif(rd.find_browser() is None, reason='no Chromium on PATH')
def test_pages_open_in_chromium(site, picture_site, tmp_path, capsys):
    for out, pages in (picture_site, site):
        assert rd.check_site(out, pages, tmp_path/'shots') == []
    log = capsys.readouterr().out
    assert '14/14 images loaded' in log and 'ok   pictures.html' in log
    assert all((tmp_path/'shots'/(Path(p.file).stem + '.png')).stat().st_size > 1000 for p in site[1])

def test_readme_up_to_date():
    assert mr.stale_cells((ROOT/'README.md').read_text()) == []

def test_readme_check_catches_a_changed_sentence(tmp_path):
    nb = nbformat.read(ROOT/'nbs'/'index.ipynb', as_version=4)
    (tmp_path/'nbs').mkdir(); idx = tmp_path/'nbs'/'index.ipynb'
    nbformat.write(nb, idx)
    readme = mr.render(idx)                               # the README this script writes without Quarto passes
    assert mr.stale_cells(readme, idx) == []
    assert mr.stale_cells(readme.replace('\n', '\n\n').replace('  ', ' '), idx) == []   # formatting does not matter
    cell = next(c for c in nb.cells if c.cell_type == 'markdown' and 'Jupyter-first library' in c.source)
    cell.source = cell.source.replace('Jupyter-first library', 'Jupyter-first package')
    nbformat.write(nb, idx)
    stale = mr.stale_cells(readme, idx)
    assert len(stale) == 1 and 'Jupyter-first package' in stale[0]
    hidden = next(c for c in nb.cells if c.cell_type == 'code' and c.source.startswith('#| hide'))
    assert 'lesion_fastai.metrics import' not in readme and hidden.source not in readme
