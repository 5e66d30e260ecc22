() => {
  const body = document.body ? document.body.cloneNode(true) : null;
  if (!body) return '';
  body.querySelectorAll('script,style,noscript,template,svg,iframe').forEach(e => e.remove());
  const holder = document.createElement('div');
  holder.style.position = 'absolute'; holder.style.left = '-99999px';
  holder.appendChild(body); document.documentElement.appendChild(holder);
  const text = body.innerText; holder.remove();
  return text.replace(/\n{3,}/g, '\n\n').trim();
}
