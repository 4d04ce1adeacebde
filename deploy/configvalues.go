package deploy

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// InstalledValues decodes the values document of an installed control plane's
// linkerd-config ConfigMap back into chart values an upgrade can render from. The document is
// in Linkerd's shape (templates/_linkerd-values.tpl): full image names, resolved image
// versions and pull policies, and resources in both the Kubernetes and Linkerd shapes. Each
// resolved setting that equals what the chart derives again (the registry prefix, a version
// equal to linkerdVersion, a pull policy equal to imagePullPolicy) is dropped so that an
// upgrade to a new version or registry moves the images with it; an explicit override
// survives.
func InstalledValues(doc string) (map[string]any, error) {
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		return nil, fmt.Errorf("linkerd-config values: %w", err)
	}
	registry, _ := v["imageRegistry"].(string)
	version, _ := v["linkerdVersion"].(string)
	pull, _ := v["imagePullPolicy"].(string)
	for _, c := range []string{"proxy", "proxyInit", "debugContainer"} {
		sec, _ := v[c].(map[string]any)
		if img, ok := sec["image"].(map[string]any); ok {
			if name, _ := img["name"].(string); registry != "" && strings.HasPrefix(name, registry+"/") {
				img["name"] = strings.TrimPrefix(name, registry+"/")
			}
			if c != "debugContainer" && version != "" && img["version"] == version {
				delete(img, "version")
			}
			if img["pullPolicy"] == pull {
				delete(img, "pullPolicy")
			}
		}
		if res, ok := sec["resources"].(map[string]any); ok {
			for _, k := range []string{"cpu", "memory", "ephemeral-storage"} {
				delete(res, k)
			}
		}
	}
	return v, nil
}
