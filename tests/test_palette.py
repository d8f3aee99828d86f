"""The one VOC colour map (VOC / DAVIS label PNGs, NYUD-v2 classes) against the devkit's values."""
from revisit_ssl.utils.palette import voc_colour_map, voc_palette


def test_colour_map_matches_the_voc_devkit():
    colours = voc_colour_map()
    # VOClabelcolormap.m: background, aeroplane, bicycle, bird, boat, ..., person, void
    expected = {0: [0, 0, 0], 1: [128, 0, 0], 2: [0, 128, 0], 3: [128, 128, 0],
                4: [0, 0, 128], 5: [128, 0, 128], 15: [192, 128, 128],
                20: [0, 64, 128], 255: [224, 224, 192]}
    for index, colour in expected.items():
        assert colours[index] == colour, index
    assert len({tuple(c) for c in colours}) == 256  # every id its own colour


def test_palette_is_the_flattened_map_and_a_prefix_is_the_same_map():
    flat = voc_palette()
    assert len(flat) == 768
    assert [flat[3 * i:3 * i + 3] for i in range(256)] == voc_colour_map()
    assert voc_colour_map(41) == voc_colour_map()[:41]
