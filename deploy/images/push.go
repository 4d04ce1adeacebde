package images

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pushed is one image Push copied: its reference in the layout and where it went.
type Pushed struct {
	From, To string
}

// Push copies every image of the OCI layout at dir (as Build writes it) to registry
// ("host:port" or "host/prefix"), keeping each image's repository path and tag:
// ghcr.io/l5d-go/proxy:v1 goes to <registry>/l5d-go/proxy:v1. Credentials come from the
// Docker config (~/.docker/config.json) as with crane; localhost and private addresses are
// spoken to over plain HTTP, others over HTTPS. transport may be nil (the default).
func Push(ctx context.Context, dir, registry string, transport http.RoundTripper) ([]Pushed, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("push: OCI layout %s (run make images): %w", dir, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("push: %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("push: %s: %w", dir, err)
	}
	if len(im.Manifests) == 0 {
		return nil, fmt.Errorf("push: %s holds no images", dir)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if transport != nil {
		opts = append(opts, remote.WithTransport(transport))
	}
	var out []Pushed
	for _, desc := range im.Manifests {
		from := desc.Annotations[RefNameAnnotation]
		if from == "" {
			return nil, fmt.Errorf("push: image %s in %s has no %s annotation", desc.Digest, dir, RefNameAnnotation)
		}
		src, err := name.NewTag(from)
		if err != nil {
			return nil, fmt.Errorf("push: %s: %w", from, err)
		}
		repo, err := Repository(from)
		if err != nil {
			return nil, err
		}
		to := registry + "/" + repo + ":" + src.TagStr()
		dst, err := name.NewTag(to)
		if err != nil {
			return nil, fmt.Errorf("push: registry %q: %w", registry, err)
		}
		img, err := lp.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("push: %s: %w", from, err)
		}
		if err := remote.Write(dst, img, opts...); err != nil {
			return nil, fmt.Errorf("push: %s to %s: %w", from, to, err)
		}
		out = append(out, Pushed{From: from, To: to})
	}
	return out, nil
}
