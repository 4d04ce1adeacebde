// Package schema lists the Linkerd proxy API as this module generates it: every gRPC
// method path and every message field with its number and type, read from the registered
// descriptors. Its tests compare that list with a golden file, so that an accidental
// rename or renumbering of the wire schema fails loudly.
package schema

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The generated packages register their descriptors.
	_ "github.com/l5d-go/l5d/proto/gen/destination"
	_ "github.com/l5d-go/l5d/proto/gen/grpcroute"
	_ "github.com/l5d-go/l5d/proto/gen/httproute"
	_ "github.com/l5d-go/l5d/proto/gen/httptypes"
	_ "github.com/l5d-go/l5d/proto/gen/identity"
	_ "github.com/l5d-go/l5d/proto/gen/inbound"
	_ "github.com/l5d-go/l5d/proto/gen/meta"
	_ "github.com/l5d-go/l5d/proto/gen/net"
	_ "github.com/l5d-go/l5d/proto/gen/opaqueroute"
	_ "github.com/l5d-go/l5d/proto/gen/outbound"
	_ "github.com/l5d-go/l5d/proto/gen/tap"
	_ "github.com/l5d-go/l5d/proto/gen/tlsroute"
)

// Prefix is the protobuf package prefix of the Linkerd proxy API.
const Prefix = "io.linkerd.proxy."

// Methods returns the full gRPC method paths ("/package.Service/Method") of the API,
// sorted.
func Methods() []string {
	var out []string
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), Prefix) {
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				out = append(out, fmt.Sprintf("/%s/%s", sd.FullName(), md.Name()))
			}
		}
		return true
	})
	slices.Sort(out)
	return out
}

// Fields returns one line per message field of the API, "message.field = number type
// [oneof o]", and per enum value, sorted.
func Fields() []string {
	var out []string
	var walkMsgs func(protoreflect.MessageDescriptors)
	walkEnums := func(eds protoreflect.EnumDescriptors) {
		for i := 0; i < eds.Len(); i++ {
			ed := eds.Get(i)
			for j := 0; j < ed.Values().Len(); j++ {
				v := ed.Values().Get(j)
				out = append(out, fmt.Sprintf("%s.%s = %d", ed.FullName(), v.Name(), v.Number()))
			}
		}
	}
	walkMsgs = func(mds protoreflect.MessageDescriptors) {
		for i := 0; i < mds.Len(); i++ {
			md := mds.Get(i)
			if md.IsMapEntry() {
				continue
			}
			for j := 0; j < md.Fields().Len(); j++ {
				fd := md.Fields().Get(j)
				out = append(out, fmt.Sprintf("%s.%s = %d %s", md.FullName(), fd.Name(), fd.Number(), fieldType(fd)))
			}
			walkMsgs(md.Messages())
			walkEnums(md.Enums())
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), Prefix) {
			walkMsgs(fd.Messages())
			walkEnums(fd.Enums())
		}
		return true
	})
	slices.Sort(out)
	return out
}

func fieldType(fd protoreflect.FieldDescriptor) string {
	var t string
	switch {
	case fd.IsMap():
		t = fmt.Sprintf("map<%s, %s>", kindName(fd.MapKey()), kindName(fd.MapValue()))
	case fd.IsList():
		t = "repeated " + kindName(fd)
	default:
		t = kindName(fd)
	}
	if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
		t += " oneof " + string(o.Name())
	}
	return t
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}
