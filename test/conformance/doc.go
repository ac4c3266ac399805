// Package conformance runs the Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance) against flexgw: a real etcd and
// kube-apiserver (kube/kubetest), the gateway as a process with
// --kubernetes, and a stand-in for the kubelet and the controllers that
// are not there (Pods, readiness, EndpointSlices, echo backends). It is
// its own module because the suite pins other Kubernetes library
// versions than the gateway's; `make conformance` runs it.
package conformance
