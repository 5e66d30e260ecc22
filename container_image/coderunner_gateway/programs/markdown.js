() => {
  const skip = new Set(['SCRIPT','STYLE','NOSCRIPT','TEMPLATE','SVG','IFRAME','HEAD']);
  const clean = s => s.replace(/\s+/g, ' ');
  function inline(node) {
    let out = '';
    for (const n of node.childNodes) {
      if (n.nodeType === 3) { out += clean(n.textContent); continue; }
      if (n.nodeType !== 1 || skip.has(n.tagName)) continue;
      const t = n.tagName, inner = inline(n).trim();
      if (t === 'A' && n.href) out += inner ? `[${inner}](${n.href})` : '';
      else if (t === 'STRONG' || t === 'B') out += inner ? `**${inner}**` : '';
      else if (t === 'EM' || t === 'I') out += inner ? `_${inner}_` : '';
      else if (t === 'CODE') out += '`' + n.textContent + '`';
      else if (t === 'BR') out += '\n';
      else if (t === 'IMG') out += `![${n.alt || ''}](${n.src})`;
      else if (block.has(t)) out += '\n' + render(n) + '\n';
      else out += inline(n);
    }
    return out;
  }
  const block = new Set(['P','DIV','SECTION','ARTICLE','MAIN','HEADER','FOOTER','NAV','ASIDE','UL','OL','LI',
                         'PRE','BLOCKQUOTE','TABLE','H1','H2','H3','H4','H5','H6','HR','FORM','FIGURE']);
  function render(node) {
    const parts = [];
    for (const n of node.childNodes) {
      if (n.nodeType === 3) { const t = clean(n.textContent).trim(); if (t) parts.push(t); continue; }
      if (n.nodeType !== 1 || skip.has(n.tagName)) continue;
      const t = n.tagName;
      if (/^H[1-6]$/.test(t)) parts.push('#'.repeat(+t[1]) + ' ' + inline(n).trim());
      else if (t === 'P') parts.push(inline(n).trim());
      else if (t === 'PRE') parts.push('```\n' + n.innerText.replace(/\n$/, '') + '\n```');
      else if (t === 'UL' || t === 'OL') {
        let i = 1;
        parts.push([...n.children].filter(c => c.tagName === 'LI')
          .map(li => (t === 'OL' ? `${i++}. ` : '- ') + inline(li).trim().replace(/\n+/g, ' ')).join('\n'));
      } else if (t === 'BLOCKQUOTE') parts.push(render(n).split('\n').map(l => '> ' + l).join('\n'));
      else if (t === 'HR') parts.push('---');
      else if (t === 'TABLE') {
        const rows = [...n.querySelectorAll('tr')].map(r => [...r.children].map(c => clean(c.innerText).trim()));
        if (rows.length) {
          const w = Math.max(...rows.map(r => r.length));
          const line = r => '| ' + [...r, ...Array(w - r.length).fill('')].join(' | ') + ' |';
          parts.push([line(rows[0]), '|' + ' --- |'.repeat(w), ...rows.slice(1).map(line)].join('\n'));
        }
      } else if (block.has(t)) { const r = render(n); if (r) parts.push(r); }
      else { const r = inline(n).trim(); if (r) parts.push(r); }
    }
    return parts.filter(Boolean).join('\n\n');
  }
  const title = document.title ? '# ' + document.title + '\n\n' : '';
  const body = document.body ? render(document.body) : '';
  return (body.startsWith('# ') ? body : title + body).replace(/\n{3,}/g, '\n\n').trim();
}
