package dataplane

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// forwardUpgrade relays an HTTP/1.1 Upgrade (WebSocket) request on a fresh
// upstream connection. On 101 both connections are hijacked into a byte
// tunnel; any other answer is relayed as a normal response. The route
// timeout bounds the handshake only, never the tunnel.
func (dp *DataPlane) forwardUpgrade(st *reqState, w http.ResponseWriter, r *http.Request, svc *service, prefix string) {
	ep := svc.pick(nil)
	if ep == nil {
		st.writeError(w, http.StatusServiceUnavailable, flagNoHealthy, "no healthy upstream for service "+svc.key)
		return
	}
	st.rec.UpstreamHost = ep.addr
	deadline := st.start.Add(st.route.timeout)
	c, err := ep.dial(deadline)
	if err != nil {
		ep.reportResult(true)
		if isTimeout(err) && !time.Now().Before(deadline) {
			st.writeError(w, http.StatusGatewayTimeout, flagTimeout, "upstream request timeout")
			return
		}
		st.writeError(w, http.StatusBadGateway, flagConnectFailure, "upstream connect error: "+errText(err))
		return
	}
	_ = c.conn.SetDeadline(deadline)
	upStart := time.Now()
	if _, err = dp.writeRequest(st, c, ep, prefix, r, true); err == nil {
		err = c.readResponseHead(&st.up, st.hdr)
	}
	if err != nil {
		c.conn.Close()
		ep.reportResult(true)
		if isTimeout(err) {
			st.writeError(w, http.StatusGatewayTimeout, flagTimeout, "upstream request timeout")
			return
		}
		st.writeError(w, http.StatusBadGateway, flagUpstreamClosed, "upstream connection closed: "+errText(err))
		return
	}
	st.upTime = time.Since(upStart)
	ep.reportResult(false)
	res := &st.up
	if res.Status != http.StatusSwitchingProtocols {
		dp.relayResponse(st, c, w, r, res)
		c.conn.Close()
		return
	}
	_ = c.conn.SetDeadline(time.Time{})
	cc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		c.conn.Close()
		st.writeError(w, http.StatusInternalServerError, "", "cannot take over the connection for websocket")
		return
	}
	st.status = http.StatusSwitchingProtocols
	// Relay the 101 head, then whatever either side already buffered.
	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n")
	for k, vv := range st.hdr {
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		bw.Write(b)
		st.bytesOut += int64(n)
		c.br.Discard(n)
	}
	if err := bw.Flush(); err != nil {
		cc.Close()
		c.conn.Close()
		st.addFlag(flagDownstreamClose)
		return
	}
	dp.tunnel(st, cc, brw.Reader, c.conn)
}

// tunnel copies bytes both ways until either side closes. The handler
// waits for it so the access-log record carries the byte counts; the
// connection counts as closed for Hooks.Conn when the tunnel ends.
func (dp *DataPlane) tunnel(st *reqState, client net.Conn, clientBuf *bufio.Reader, up net.Conn) {
	dp.hijackMu.Lock()
	dp.hijacked[client] = struct{}{}
	dp.hijacked[up] = struct{}{}
	dp.tunnels.Add(1)
	dp.hijackMu.Unlock()
	defer func() {
		dp.hijackMu.Lock()
		delete(dp.hijacked, client)
		delete(dp.hijacked, up)
		dp.hijackMu.Unlock()
		dp.tunnels.Done()
		if dp.hooks.Conn != nil {
			dp.hooks.Conn(st.ln.name, -1)
		}
	}()
	in := make(chan int64, 1)
	go func() {
		// Client to upstream, starting with bytes net/http already read.
		n, _ := io.Copy(up, io.MultiReader(io.LimitReader(clientBuf, int64(clientBuf.Buffered())), client))
		if tc, ok := up.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		} else {
			up.Close()
		}
		in <- n
	}()
	n, _ := io.Copy(client, up)
	st.bytesOut += n
	client.Close()
	up.Close()
	st.bytesIn += <-in
}
