// Signs this browser in to the codec: the key goes once to POST /codec/session, which sets a
// signed session (not the key) in an HttpOnly cookie for /codec only. The page stores nothing.
(function () {
  const form = document.getElementById('codec-form');
  const input = document.getElementById('codec-key');
  const status = document.getElementById('codec-status');
  const say = (text) => {
    status.textContent = text;
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    input.value = '';
    try {
      const res = await fetch('/codec/session', {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + key },
        credentials: 'same-origin',
      });
      const body = await res.json().catch(() => ({}));
      if (res.ok) {
        say(
          '已登录，至 ' +
            new Date(body.expiresAt).toLocaleString() +
            ' / Signed in (' +
            body.role +
            ') until ' +
            body.expiresAt,
        );
      } else {
        say('登录失败 / Sign-in refused: ' + (body.detail || res.status));
      }
    } catch (err) {
      say('网络错误 / Network error: ' + err);
    }
  });
  document.getElementById('codec-signout').addEventListener('click', async () => {
    await fetch('/codec/session', { method: 'DELETE', credentials: 'same-origin' });
    say('已退出 / Signed out');
  });
})();
