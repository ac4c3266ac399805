// Package deploy holds flexgw's Linux installation files — the systemd unit
// (flexgw.service), its environment file (default/flexgw), the default
// /etc/flexgw/conf.d (conf.d/README) and the scripts behind `make install`
// (install.sh) and `make deb` (deb.sh, dpkg-deb) — and the tests that build,
// install and verify them: both package the binary `make build` made, the
// unit passes systemd-analyze verify and security, and its system call
// filter admits every call flexgw makes (traced with strace). It has no Go
// API.
package deploy
