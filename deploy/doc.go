// Package deploy holds flexgw's Linux installation files — the systemd unit
// (flexgw.service), the default /etc/flexgw/conf.d (conf.d/README), the nfpm
// package definition (nfpm.yaml) and the scripts behind `make install`
// (install.sh) and `make deb` (deb.sh) — and the tests that build, install
// and verify them. It has no Go API.
package deploy
