"""The Segmenter page in Chromium: a real click on an animal's region explains that region."""

from __future__ import annotations

import re

from tests.e2e.helpers import assert_no_error, shot, wait_for_caption


def test_a_click_on_a_region_explains_it(server, page):
    page.goto(server + "/Segmenter?scene=3")
    wait_for_caption(page, "Grad-CAM for the ")
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    chart.locator(".main-svg").first.wait_for()
    page.wait_for_timeout(1000)
    # a grid point over a labelled pixel of another class than the one shown, in page pixels
    x, y, name, point = chart.evaluate("""gd => {
        const t = gd._fullData[1];
        const shown = [...document.querySelectorAll('[data-testid=stSelectbox]')]
            .map(e => e.innerText).find(t => t.startsWith('Class')) || '';
        let i = t.text.findIndex(n => n !== 'background' && !shown.includes(n));
        if (i < 0) i = t.text.findIndex(n => n !== 'background');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i]),
                t.text[i], t.customdata[i].slice(0, 2).join(',')];
    }""")
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    wait_for_caption(page, f"Grad-CAM for the {name} region")
    page.wait_for_function("p => location.search.includes('seg_point=' + p.replace(',', '%2C'))",
                           arg=point)
    assert page.get_by_text(re.compile(r"the connected region clicked, [\d,]+ pixels")).count()
    assert_no_error(page)
    shot(page, "45-segmenter-region-clicked")
