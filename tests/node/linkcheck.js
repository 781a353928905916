// Checks the links of a built mdBook: every relative href/src in every HTML page must name a
// file of the book, and every #fragment an id in that page. Pages with text that mdBook could
// not expand (a `{{#include}}` of a missing file) fail too. External links (with a scheme) are
// not fetched: the site must work offline.
//
//   node tests/node/linkcheck.js target/book
//
// Exits 1 and lists every broken link. Used by scripts/docs.sh; docs.test.js checks that it
// catches what it should.

'use strict';

const fs = require('node:fs');
const path = require('node:path');

/** The site's mount point on the server (book.toml's site-url): absolute links under it. */
const SITE_URL = '/docs/';

function walk(dir, out = []) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else out.push(full);
  }
  return out;
}

function ids(html) {
  const found = new Set();
  for (const m of html.matchAll(/\s(?:id|name)\s*=\s*"([^"]*)"/g)) found.add(m[1]);
  return found;
}

function decodeEntities(s) {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/** Every problem of the book in `root`, as strings; an empty list means every link works. */
function checkBook(root) {
  root = path.resolve(root);
  const problems = [];
  const files = walk(root);
  const pages = files.filter((f) => f.endsWith('.html'));
  if (!pages.some((p) => path.relative(root, p) === 'index.html')) problems.push('no index.html');
  const idCache = new Map();
  const idsOf = (file) => {
    if (!idCache.has(file)) idCache.set(file, ids(fs.readFileSync(file, 'utf8')));
    return idCache.get(file);
  };
  let links = 0;
  for (const page of pages) {
    const rel = path.relative(root, page);
    const html = fs.readFileSync(page, 'utf8');
    if (/\{\{#\w+/.test(html)) problems.push(`${rel}: an mdBook directive was not expanded (missing include?)`);
    for (const m of html.matchAll(/\s(?:href|src)\s*=\s*"([^"]*)"/g)) {
      const raw = decodeEntities(m[1]);
      if (raw === '' || /^[a-z][a-z0-9+.-]*:/i.test(raw) || raw.startsWith('//')) continue;
      links += 1;
      const hash = raw.indexOf('#');
      const target = (hash === -1 ? raw : raw.slice(0, hash)).split('?')[0];
      const fragment = hash === -1 ? '' : decodeURIComponent(raw.slice(hash + 1));
      let file;
      if (target === '') {
        file = page;
      } else if (target.startsWith('/')) {
        if (!target.startsWith(SITE_URL)) {
          problems.push(`${rel}: ${raw}: an absolute link outside the book`);
          continue;
        }
        file = path.join(root, decodeURIComponent(target.slice(SITE_URL.length)));
      } else {
        file = path.resolve(path.dirname(page), decodeURIComponent(target));
      }
      if (target.endsWith('/') || (fs.existsSync(file) && fs.statSync(file).isDirectory())) {
        file = path.join(file, 'index.html');
      }
      if (path.relative(root, file).startsWith('..')) {
        problems.push(`${rel}: ${raw}: points outside the book`);
      } else if (!fs.existsSync(file)) {
        problems.push(`${rel}: ${raw}: no such file`);
      } else if (fragment && file.endsWith('.html') && !idsOf(file).has(fragment)) {
        problems.push(`${rel}: ${raw}: no id "${fragment}" in ${path.relative(root, file)}`);
      }
    }
  }
  return { problems, pages: pages.length, links };
}

module.exports = { checkBook };

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node linkcheck.js BOOK_DIR');
    process.exit(2);
  }
  const { problems, pages, links } = checkBook(dir);
  for (const p of problems) console.error(`broken: ${p}`);
  console.log(`link check: ${pages} pages, ${links} links, ${problems.length} broken`);
  process.exit(problems.length === 0 ? 0 : 1);
}
