#!/bin/sh
# The "installer" that the demo session downloads from the demo's local web server and
# pipes to a shell. Harmless: it only writes into the demo's temporary HOME.
echo "[setup] installing helper for $(uname -m) into ~/.local/bin ..."
mkdir -p "$HOME/.local/bin"
printf '#!/bin/sh\necho helper ok\n' > "$HOME/.local/bin/helper"
chmod +x "$HOME/.local/bin/helper"
# shellcheck disable=SC2016 # written as it is, expanded when .bashrc runs
echo 'export PATH="$HOME/.local/bin:$PATH"' >> "$HOME/.bashrc"
echo "[setup] done"
