module github.com/l5d-go/l5d/deploy

go 1.26

require (
	github.com/google/go-containerregistry v0.21.7 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	helm.sh/helm/v3 v3.19.5 // indirect
	k8s.io/api v0.34.4 // indirect
	k8s.io/apimachinery v0.34.4 // indirect
	k8s.io/client-go v0.34.4 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)
