package certs

// WorkloadIdentity returns the mesh identity of a ServiceAccount, as Linkerd names it:
// "<sa>.<ns>.serviceaccount.identity.<controlPlaneNS>.<trustDomain>".
func WorkloadIdentity(sa, ns, controlPlaneNS, trustDomain string) string {
	return sa + "." + ns + "." + IdentitySuffix(controlPlaneNS, trustDomain)
}

// IdentitySuffix is what every workload identity of a control plane ends with:
// "serviceaccount.identity.<controlPlaneNS>.<trustDomain>".
func IdentitySuffix(controlPlaneNS, trustDomain string) string {
	return "serviceaccount.identity." + controlPlaneNS + "." + trustDomain
}
