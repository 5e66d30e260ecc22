() => [...document.querySelectorAll('a[href]')]
  .filter(a => /^https?:/.test(a.href))
  .map(a => ({text: (a.innerText || a.title || '').replace(/\s+/g, ' ').trim(), href: a.href}))
