using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.Pipeline;
using Google.Protobuf;

namespace ExtProc.Envoy;

/// <summary>Converts between Envoy's header protobufs and our own header types.</summary>
internal static class EnvoyHeaders
{
    /// <summary>
    /// Envoy sends lower-case keys and values in raw_value only. Keys are lower-cased again here so a
    /// client that is not Envoy cannot hide a header from our exact-name lookups; a value-only entry
    /// (legacy senders) is read from value.
    /// </summary>
    public static HttpHeaderList ToHeaderList(HeaderMap? map)
    {
        if (map is null)
        {
            return new HttpHeaderList(1);
        }

        var headers = map.Headers;
        var list = new HttpHeaderList(headers.Count);
        for (var i = 0; i < headers.Count; i++)
        {
            var header = headers[i];
            var value = header.RawValue.IsEmpty && header.Value.Length > 0
                ? Encoding.UTF8.GetBytes(header.Value)
                : header.RawValue.Memory;
            list.Add(header.Key.ToLowerInvariant(), value);
        }

        return list;
    }

    /// <summary>Builds Envoy's mutation from our edits: raw_value only, append set only when adding.</summary>
    public static HeaderMutation? ToMutation(HeaderMutationBuilder edits)
    {
        if (edits.IsEmpty)
        {
            return null;
        }

        var mutation = new HeaderMutation();
        var sets = edits.Sets;
        for (var i = 0; i < sets.Count; i++)
        {
            var edit = sets[i];
            var option = new HeaderValueOption
            {
                Header = new HeaderValue { Key = edit.Name, RawValue = ByteString.CopyFrom(edit.Value.Span) },
            };
            if (edit.Append)
            {
                // ext_proc honours only this deprecated flag (append_action is ignored by Envoy).
#pragma warning disable CS0612
                option.Append = true;
#pragma warning restore CS0612
            }

            mutation.SetHeaders.Add(option);
        }

        var removals = edits.Removals;
        for (var i = 0; i < removals.Count; i++)
        {
            mutation.RemoveHeaders.Add(removals[i]);
        }

        return mutation;
    }

    public static HeaderMutation ToMutation(IReadOnlyList<KeyValuePair<string, string>> headers, string contentType)
    {
        var mutation = new HeaderMutation();
        mutation.SetHeaders.Add(Overwrite("content-type", contentType));
        for (var i = 0; i < headers.Count; i++)
        {
            mutation.SetHeaders.Add(Overwrite(headers[i].Key, headers[i].Value));
        }

        return mutation;
    }

    private static HeaderValueOption Overwrite(string name, string value) => new()
    {
        Header = new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) },
    };
}
