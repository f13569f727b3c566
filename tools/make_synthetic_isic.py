"""A synthetic ISIC 2018 Task 1 training set of any size, in the challenge's layout and sizes.

    python tools/make_synthetic_isic.py --n 10000 --out DIR [--distinct 240] [--workers 2] [--seed 0]

It writes `DIR/ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg …` and
`DIR/ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png …`, as the challenge's archives unpack.
Only `--distinct` image/mask pairs are generated (a skin-coloured field, a darker elliptical lesion, a dermoscope's
dark rim, and fine texture, so that the large JPEGs weigh megabytes as real ones do); every other ID is a HARD LINK to
one of them (a copy where the file system refuses links), so 10,000 pairs take the disk space of `--distinct` (0.44 GB
for 240, made in 15 minutes on a shared, busy 2-core machine). The sizes mix ISIC 2018 Task 1's common ones, from
1022 × 767 to 6688 × 4439 (`SIZES`: size and share).
Because the files are few, the page cache holds them: a benchmark on this set measures decoding, not the disk."""
import argparse, os, shutil, time
from multiprocessing import Pool
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw

SIZES = [((1022, 767), 0.40), ((1504, 1129), 0.15), ((3008, 2000), 0.15), ((4288, 2848), 0.12), ((6688, 4439), 0.08),
         ((2592, 1936), 0.10)]
IMAGES, MASKS = 'ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth'

def sizes_of(n:int)->list:
    "`n` sizes in the shares of `SIZES`, interleaved, so that any prefix of IDs has about the same mix"
    counts = np.round(np.array([s for _, s in SIZES])*n).astype(int)
    counts[0] += n - counts.sum()
    seq = [wh for (wh, _), c in zip(SIZES, counts) for _ in range(c)]
    return [seq[i] for i in np.random.default_rng(0).permutation(n)]

def lesion_mask(wh:tuple, rng)->Image.Image:
    "A 0/255 mask holding one ellipse of random centre, axes and aspect"
    w, h = wh
    cx, cy = rng.uniform(0.35, 0.65)*w, rng.uniform(0.35, 0.65)*h
    ax, ay = rng.uniform(0.1, 0.3)*w, rng.uniform(0.1, 0.3)*h
    m = Image.new('L', wh, 0)
    ImageDraw.Draw(m).ellipse([cx-ax, cy-ay, cx+ax, cy+ay], fill=255)
    return m

def smooth_field(wh:tuple, rng, base, spread:float)->np.ndarray:
    "An RGB float field around the colour `base`, varying smoothly (noise 1/32 of the size, upscaled)"
    small = (np.array(base) + rng.normal(0, spread, (max(wh[1]//32, 2), max(wh[0]//32, 2), 3))).clip(0, 255)
    return np.asarray(Image.fromarray(small.astype(np.uint8)).resize(wh, Image.BILINEAR), np.float32)

def texture(wh:tuple, rng)->np.ndarray:
    "Fine grain: a 256 × 256 noise tile repeated over the image"
    tile = rng.normal(0, 7, (256, 256, 1)).astype(np.float32)
    return np.tile(tile, ((wh[1]+255)//256, (wh[0]+255)//256, 3))[:wh[1], :wh[0]]

def dark_rim(wh:tuple)->np.ndarray:
    "1 inside the dermoscope's circle, 0.1 in its corners"
    w, h = wh
    y, x = np.ogrid[:h, :w]
    r = np.hypot((x - w/2)/(w/2), (y - h/2)/(h/2))
    return np.where(r < 1.25, 1., 0.1).astype(np.float32)[..., None]

def make_pair(i:int, wh:tuple, out:Path, seed:int):
    "Write the generated pair `i` of size `wh`"
    rng = np.random.default_rng(seed + i)
    m = lesion_mask(wh, rng)
    skin, lesion = smooth_field(wh, rng, (215, 160, 135), 12), smooth_field(wh, rng, (120, 70, 50), 25)
    a = np.where(np.asarray(m)[..., None] > 0, lesion, skin) + texture(wh, rng)
    Image.fromarray((a*dark_rim(wh)).clip(0, 255).astype(np.uint8)).save(out/IMAGES/f'ISIC_{i:07d}.jpg', quality=90)
    m.save(out/MASKS/f'ISIC_{i:07d}_segmentation.png')

def link(src:Path, dst:Path)->str:
    "Hard-link `dst` to `src` (copy where links are refused); 'link' or 'copy'"
    try: os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        return 'copy'
    return 'link'

def link_rest(out:Path, n:int, distinct:int)->dict:
    "IDs `distinct`…`n-1`: each image and mask linked to those of ID `i % distinct`, which have its size"
    how = {'link': 0, 'copy': 0}
    for i in range(distinct, n):
        j = i % distinct
        how[link(out/IMAGES/f'ISIC_{j:07d}.jpg', out/IMAGES/f'ISIC_{i:07d}.jpg')] += 1
        how[link(out/MASKS/f'ISIC_{j:07d}_segmentation.png', out/MASKS/f'ISIC_{i:07d}_segmentation.png')] += 1
    return how

def disk_bytes(out:Path)->int:
    "Bytes on disk under `out`, each hard-linked file counted once"
    seen = {(s.st_dev, s.st_ino): s.st_blocks*512 for f in out.rglob('*') if f.is_file() for s in [f.stat()]}
    return sum(seen.values())

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=10_000, help='pairs')
    p.add_argument('--out', type=Path, required=True, help='destination folder (created)')
    p.add_argument('--distinct', type=int, default=240, help='pairs generated; the others are hard links to them')
    p.add_argument('--workers', type=int, default=os.cpu_count(), help='processes generating the distinct pairs')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    t, distinct = time.time(), min(a.distinct, a.n)
    for d in (IMAGES, MASKS): (a.out/d).mkdir(parents=True, exist_ok=True)
    sizes = sizes_of(distinct)                     # IDs i and i % distinct share a size, so the mix holds for any n
    with Pool(a.workers) as pool: pool.starmap(make_pair, [(i, sizes[i], a.out, a.seed) for i in range(distinct)])
    how = link_rest(a.out, a.n, distinct)
    print(f"{a.n} pairs in {a.out}: {distinct} generated, {how['link']} hard links, {how['copy']} copies; "
          f"{disk_bytes(a.out)/1e9:.2f} GB on disk; {time.time()-t:.0f} s")

if __name__ == '__main__': main()
