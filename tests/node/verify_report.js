// Open an HTML report of `odradek verify` in headless Chromium (playwright-core driving the system's
// browser) and say what the browser saw.
//
//   node verify_report.js CHROMIUM HTML_FILE SCREENSHOT_PNG
//
// Prints one JSON object on stdout:
//   {"title", "pageErrors": [..], "consoleErrors": [..], "requests": [non-file URLs the page asked for],
//    "plots": {id: {"found", "svgs", "width", "height"}}, "matrixRows", "screenshot", "screenshotBytes"}
// Exits non-zero when the browser cannot be started or the page cannot be loaded.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');
const { chromium } = require('playwright-core');

const PLOTS = ['plot-throughput', 'plot-latency', 'plot-faults'];
// Without the background-networking flags Chromium tries to reach its vendor's services at start-up.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function main() {
  const [executablePath, htmlFile, screenshot] = process.argv.slice(2);
  if (!executablePath || !htmlFile || !screenshot) {
    console.error('usage: node verify_report.js CHROMIUM HTML_FILE SCREENSHOT_PNG');
    process.exit(2);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'odradek-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60000,
  });
  const out = { pageErrors: [], consoleErrors: [], requests: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => out.pageErrors.push(String(e && e.message ? e.message : e)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') out.consoleErrors.push(msg.text());
    });
    page.on('request', (req) => {
      const url = req.url();
      if (!url.startsWith('file:') && !url.startsWith('data:')) out.requests.push(url);
    });
    await page.goto(pathToFileURL(path.resolve(htmlFile)).href, { waitUntil: 'load', timeout: 30000 });
    out.title = await page.title();
    out.plots = await page.evaluate((ids) => {
      const plots = {};
      for (const id of ids) {
        const el = document.getElementById(id);
        if (!el) {
          plots[id] = { found: false, svgs: 0, width: 0, height: 0 };
          continue;
        }
        const svg = el.querySelector('svg');
        const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
        plots[id] = { found: true, svgs: el.querySelectorAll('svg').length, width: box.width, height: box.height };
      }
      return plots;
    }, PLOTS);
    out.matrixRows = await page.locator('#matrix tbody tr').count();
    await page.screenshot({ path: screenshot, fullPage: true });
    out.screenshot = screenshot;
    out.screenshotBytes = fs.statSync(screenshot).size;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
