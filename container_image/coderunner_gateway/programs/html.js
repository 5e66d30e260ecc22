(limit) => {
  const doctype = document.doctype ? '<!DOCTYPE ' + document.doctype.name + '>' : '';
  const html = doctype + (document.documentElement ? document.documentElement.outerHTML : '');
  return html.length > limit ? html.slice(0, limit + 1) : html;
}
