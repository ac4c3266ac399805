package dataplane

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// startHealthChecks runs the service's active HTTP health check, one
// goroutine per endpoint, until the service is closed. Endpoints start
// healthy, so a fresh gateway serves at once; the first failing checks
// take an endpoint out.
func (s *service) startHealthChecks() {
	hc := s.cfg.HealthCheck
	if hc == nil || hc.Path == "" {
		return
	}
	interval := hc.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	timeout := hc.Timeout
	if timeout <= 0 || timeout > interval {
		timeout = min(interval, 5*time.Second)
	}
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:     s.tls,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     2 * interval,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	scheme := "http"
	if s.cfg.Protocol == ir.HTTPS {
		scheme = "https"
	}
	for _, e := range s.endpoints {
		go s.checkLoop(e, client, scheme+"://"+e.addr+hc.Path, interval, hc)
	}
}

func (s *service) checkLoop(e *endpoint, client *http.Client, url string, interval time.Duration, hc *ir.HealthCheck) {
	healthyAfter := max(hc.HealthyThreshold, 1)
	unhealthyAfter := max(hc.UnhealthyThreshold, 1)
	var ok, bad int
	t := time.NewTicker(interval)
	defer t.Stop()
	defer client.CloseIdleConnections()
	for {
		if s.probe(client, url, e.host, hc) {
			ok, bad = ok+1, 0
			if ok >= healthyAfter && !e.activeHealthy.Load() {
				e.activeHealthy.Store(true)
				s.dp.log.Info("endpoint healthy", "service", s.key, "endpoint", e.addr, "check", url)
				s.dp.healthChanged(s.key, e.addr, e.available())
			}
		} else {
			ok, bad = 0, bad+1
			if bad >= unhealthyAfter && e.activeHealthy.Load() {
				e.activeHealthy.Store(false)
				s.dp.log.Warn("endpoint unhealthy", "service", s.key, "endpoint", e.addr, "check", url)
				s.dp.healthChanged(s.key, e.addr, false)
			}
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *service) probe(client *http.Client, url, host string, hc *ir.HealthCheck) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Host = host
	req.Header.Set("User-Agent", "flexgw-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	if len(hc.ExpectedStatuses) > 0 {
		return slices.Contains(hc.ExpectedStatuses, resp.StatusCode)
	}
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
