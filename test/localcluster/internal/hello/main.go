// Command hello is the localcluster integration tests' app. Without arguments it answers
// every HTTP request on :$PORT (default 8080) with "hello from <hostname>". With the
// argument "whoami" it builds the in-cluster client configuration (service-account token,
// CA and KUBERNETES_SERVICE_HOST/PORT), asks the API server who it is and prints the user
// name.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "whoami" {
		whoami()
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host, err := os.Hostname()
	if err != nil {
		log.Fatalf("hello: hostname: %v", err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s", host)
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}

func whoami() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("hello: in-cluster config: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("hello: client: %v", err)
	}
	r, err := client.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		log.Fatalf("hello: self-subject review via %s: %v", cfg.Host, err)
	}
	fmt.Printf("%s via %s", r.Status.UserInfo.Username, cfg.Host)
}
