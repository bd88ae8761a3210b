using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ExtProc.Tests.Wire;
using Google.Protobuf.Reflection;
using FieldType = Google.Protobuf.Reflection.FieldDescriptorProto.Types.Type;
using Label = Google.Protobuf.Reflection.FieldDescriptorProto.Types.Label;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// Walks a JSON config against protobuf descriptors with the proto3 JSON mapping that Envoy's parser applies:
/// unknown fields, wrong JSON kinds, undefined enum values, two members of one oneof, unresolvable Any @type
/// URLs and malformed well-known types (Duration "1s", wrappers, Struct, Any) are errors. On top it enforces the
/// PGV rules in <see cref="PgvRules"/> and refuses deprecated fields (Envoy warns or fails on them). C#
/// Google.Protobuf has no dynamic messages, hence a walker over the descriptor protos. Every error is collected.
/// </summary>
internal sealed partial class ProtoJsonChecker(DescriptorIndex index)
{
    private const string TypeUrlPrefix = "type.googleapis.com/";

    private static readonly HashSet<string> s_wrappers =
    [
        "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value", "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.BoolValue", "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    ];

    private readonly List<string> _errors = [];

    /// <summary>Checks <paramref name="json"/> as a message of <paramref name="messageType"/>; returns every error, with JSON paths.</summary>
    public IReadOnlyList<string> Check(JsonNode? json, string messageType)
    {
        _errors.Clear();
        if (index.FindMessage(messageType) is null)
        {
            Error("$", $"unknown message type {messageType}");
        }
        else
        {
            Message(json, messageType, "$", skipTypeKey: false);
        }

        return [.. _errors];
    }

    /// <summary>True for types whose JSON form is not an object of their fields (so inside Any they sit under "value").</summary>
    private static bool HasSpecialJson(string type) =>
        s_wrappers.Contains(type) || type is "google.protobuf.Duration" or "google.protobuf.Timestamp" or "google.protobuf.FieldMask"
            or "google.protobuf.Struct" or "google.protobuf.Value" or "google.protobuf.ListValue" or "google.protobuf.Any";

    private void Message(JsonNode? node, string type, string path, bool skipTypeKey)
    {
        if (!skipTypeKey && WellKnown(node, type, path))
        {
            return;
        }

        if (node is not JsonObject obj)
        {
            Error(path, $"expected an object for {type}, got {Kind(node)}");
            return;
        }

        var message = index.FindMessage(type)!;
        var oneofSeen = new Dictionary<int, string>();
        var seen = new HashSet<int>();
        foreach (var (key, value) in obj)
        {
            var childPath = $"{path}.{key}";
            if (skipTypeKey && key == "@type")
            {
                continue;
            }

            var field = message.Field.FirstOrDefault(f => f.Name == key || f.JsonName == key);
            if (field is null)
            {
                Error(childPath, $"unknown field '{key}' in {type}");
                continue;
            }

            // null means "unset" in proto3 JSON, except for google.protobuf.Value, where it is a value.
            if (value is null && field.TypeName != ".google.protobuf.Value")
            {
                continue;
            }

            if (!seen.Add(field.Number))
            {
                Error(childPath, $"field {field.Name} of {type} given twice");
                continue;
            }

            if (field.Options?.Deprecated == true)
            {
                Error(childPath, $"deprecated field {type}.{field.Name}");
            }

            if (DescriptorIndex.OneofOf(message, field) is not null)
            {
                if (oneofSeen.TryGetValue(field.OneofIndex, out var other))
                {
                    Error(childPath, $"oneof {message.OneofDecl[field.OneofIndex].Name} of {type} has both '{other}' and '{key}'");
                }

                oneofSeen[field.OneofIndex] = key;
            }

            Field(field, value, childPath);
        }

        foreach (var field in message.Field)
        {
            // PGV applies a oneof member's rules only when that member is the one set.
            var rules = PgvRules.For(field);
            if (rules.Required && !seen.Contains(field.Number) && DescriptorIndex.OneofOf(message, field) is null)
            {
                Error($"{path}.{field.Name}", $"required field {type}.{field.Name} is missing");
            }
        }

        for (var i = 0; i < message.OneofDecl.Count; i++)
        {
            if (PgvRules.OneofRequired(message.OneofDecl[i]) && !oneofSeen.ContainsKey(i))
            {
                var members = string.Join(", ", message.Field.Where(f => f.HasOneofIndex && f.OneofIndex == i).Select(static f => f.Name));
                Error(path, $"{type}: exactly one of oneof {message.OneofDecl[i].Name} ({members}) is required");
            }
        }
    }

    private void Field(FieldDescriptorProto field, JsonNode? value, string path)
    {
        var rules = PgvRules.For(field);
        if (index.IsMap(field))
        {
            if (value is not JsonObject map)
            {
                Error(path, $"expected an object (map) for {field.Name}, got {Kind(value)}");
                return;
            }

            var entry = index.FindMessage(field.TypeName)!;
            var keyField = entry.Field.Single(static f => f.Number == 1);
            var valueField = entry.Field.Single(static f => f.Number == 2);
            foreach (var (key, item) in map)
            {
                MapKey(keyField.Type, key, $"{path}[{key}]");
                Single(valueField, item, $"{path}[{key}]");
            }

            return;
        }

        if (field.Label == Label.Repeated)
        {
            if (value is not JsonArray array)
            {
                Error(path, $"expected an array for repeated {field.Name}, got {Kind(value)}");
                return;
            }

            if ((ulong)array.Count < rules.MinItems)
            {
                Error(path, $"{field.Name} needs at least {rules.MinItems} item(s)");
            }

            for (var i = 0; i < array.Count; i++)
            {
                Single(field, array[i], $"{path}[{i}]");
            }

            return;
        }

        if (field.Type == FieldType.String && value is JsonValue s && s.GetValueKind() == JsonValueKind.String
            && (ulong)s.GetValue<string>().Length < rules.MinLen)
        {
            Error(path, $"{field.Name} must be at least {rules.MinLen} character(s) long");
        }

        Single(field, value, path);
    }

    private void Single(FieldDescriptorProto field, JsonNode? value, string path)
    {
        switch (field.Type)
        {
            case FieldType.Message or FieldType.Group:
                Message(value, DescriptorIndex.StripDot(field.TypeName), path, skipTypeKey: false);
                break;
            case FieldType.Enum:
                Enum(value, DescriptorIndex.StripDot(field.TypeName), path);
                break;
            default:
                Scalar(field.Type, value, path);
                break;
        }
    }

    private void Enum(JsonNode? value, string enumType, string path)
    {
        var e = index.FindEnum(enumType)!;
        if (enumType == "google.protobuf.NullValue" && value is null)
        {
            return;
        }

        if (value is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            var name = v.GetValue<string>();
            var defined = e.Value.FirstOrDefault(x => x.Name == name);
            if (defined is null)
            {
                Error(path, $"'{name}' is not a value of enum {enumType} ({string.Join(", ", e.Value.Select(static x => x.Name))})");
            }
            else if (defined.Options?.Deprecated == true)
            {
                Error(path, $"deprecated enum value {enumType}.{name}");
            }
        }
        else if (TryInteger(value, out var number))
        {
            if (!e.Value.Any(x => x.Number == number))
            {
                Error(path, $"{number} is not a defined number of enum {enumType}");
            }
        }
        else
        {
            Error(path, $"expected an enum name or number for {enumType}, got {Kind(value)}");
        }
    }

    private void Scalar(FieldType type, JsonNode? value, string path)
    {
        var kind = value is JsonValue v ? v.GetValueKind() : (JsonValueKind?)null;
        switch (type)
        {
            case FieldType.String:
                Expect(kind == JsonValueKind.String, path, "a string", value);
                break;
            case FieldType.Bytes:
                if (kind != JsonValueKind.String || !IsBase64(value!.GetValue<string>()))
                {
                    Error(path, $"expected base64 bytes, got {Kind(value)}");
                }

                break;
            case FieldType.Bool:
                Expect(kind is JsonValueKind.True or JsonValueKind.False, path, "true or false", value);
                break;
            case FieldType.Int32 or FieldType.Sint32 or FieldType.Sfixed32:
                Expect(TryInteger(value, out var i32) && i32 is >= int.MinValue and <= int.MaxValue, path, "a 32-bit integer", value);
                break;
            case FieldType.Uint32 or FieldType.Fixed32:
                Expect(TryInteger(value, out var u32) && u32 is >= 0 and <= uint.MaxValue, path, "an unsigned 32-bit integer", value);
                break;
            case FieldType.Int64 or FieldType.Sint64 or FieldType.Sfixed64:
                Expect(TryInteger(value, out var i64) && i64 is >= long.MinValue and <= long.MaxValue, path, "a 64-bit integer", value);
                break;
            case FieldType.Uint64 or FieldType.Fixed64:
                Expect(TryInteger(value, out var u64) && u64 is >= 0 and <= ulong.MaxValue, path, "an unsigned 64-bit integer", value);
                break;
            case FieldType.Double or FieldType.Float:
                Expect(IsFloat(value), path, "a number", value);
                break;
            default:
                Error(path, $"unsupported field type {type}");
                break;
        }
    }

    /// <summary>Handles the well-known types with their own JSON forms; false when <paramref name="type"/> is an ordinary message.</summary>
    private bool WellKnown(JsonNode? node, string type, string path)
    {
        var kind = node is JsonValue v ? v.GetValueKind() : (JsonValueKind?)null;
        switch (type)
        {
            case "google.protobuf.Duration":
                if (kind != JsonValueKind.String || DurationRegex().Match(node!.GetValue<string>()) is not { Success: true } m
                    || !decimal.TryParse(m.Groups[1].Value, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds)
                    || Math.Abs(seconds) > 315_576_000_000m)
                {
                    Error(path, $"expected a Duration string such as \"1s\" or \"0.5s\", got {Kind(node)}");
                }

                return true;
            case "google.protobuf.Timestamp":
                Expect(kind == JsonValueKind.String && DateTimeOffset.TryParse(node!.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.None, out _),
                    path, "an RFC 3339 timestamp string", node);
                return true;
            case "google.protobuf.FieldMask":
                Expect(kind == JsonValueKind.String, path, "a FieldMask string", node);
                return true;
            case "google.protobuf.Struct":
                Expect(node is JsonObject, path, "an object (Struct)", node);
                return true;
            case "google.protobuf.ListValue":
                Expect(node is JsonArray, path, "an array (ListValue)", node);
                return true;
            case "google.protobuf.Value":
                return true;
            case "google.protobuf.Any":
                Any(node, path);
                return true;
            case "google.protobuf.DoubleValue" or "google.protobuf.FloatValue":
                Scalar(FieldType.Double, node, path);
                return true;
            case "google.protobuf.Int64Value":
                Scalar(FieldType.Int64, node, path);
                return true;
            case "google.protobuf.UInt64Value":
                Scalar(FieldType.Uint64, node, path);
                return true;
            case "google.protobuf.Int32Value":
                Scalar(FieldType.Int32, node, path);
                return true;
            case "google.protobuf.UInt32Value":
                Scalar(FieldType.Uint32, node, path);
                return true;
            case "google.protobuf.BoolValue":
                Scalar(FieldType.Bool, node, path);
                return true;
            case "google.protobuf.StringValue":
                Scalar(FieldType.String, node, path);
                return true;
            case "google.protobuf.BytesValue":
                Scalar(FieldType.Bytes, node, path);
                return true;
            default:
                return false;
        }
    }

    private void Any(JsonNode? node, string path)
    {
        if (node is not JsonObject obj)
        {
            Error(path, $"expected an object (Any) with \"@type\", got {Kind(node)}");
            return;
        }

        if (obj.Count == 0)
        {
            return; // an empty Any is the default value
        }

        if (obj["@type"] is not JsonValue typeValue || typeValue.GetValueKind() != JsonValueKind.String)
        {
            Error(path, "Any without a string \"@type\"");
            return;
        }

        var url = typeValue.GetValue<string>();
        var slash = url.LastIndexOf('/');
        var typeName = slash < 0 ? url : url[(slash + 1)..];
        if (slash < 0 || index.FindMessage(typeName) is null)
        {
            Error($"{path}.@type", $"unknown type '{url}' (not in the compiled Envoy API descriptor set; expected {TypeUrlPrefix}<full message name>)");
            return;
        }

        if (HasSpecialJson(typeName))
        {
            foreach (var key in obj.Select(static p => p.Key).Where(static k => k is not "@type" and not "value"))
            {
                Error($"{path}.{key}", $"unknown field '{key}' in Any holding {typeName} (its JSON goes under \"value\")");
            }

            WellKnown(obj["value"], typeName, $"{path}.value");
            return;
        }

        Message(obj, typeName, path, skipTypeKey: true);
    }

    private void MapKey(FieldType keyType, string key, string path)
    {
        var ok = keyType switch
        {
            FieldType.String => true,
            FieldType.Bool => key is "true" or "false",
            FieldType.Uint32 or FieldType.Fixed32 or FieldType.Uint64 or FieldType.Fixed64 => ulong.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out _),
            _ => long.TryParse(key, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
        };
        Expect(ok, path, $"a {keyType} map key", JsonValue.Create(key));
    }

    private static bool TryInteger(JsonNode? value, out decimal number)
    {
        number = 0;
        if (value is not JsonValue v)
        {
            return false;
        }

        return v.GetValueKind() switch
        {
            // Integral numbers, or strings holding them (proto3 JSON accepts both; Envoy's YAML makes big ones strings).
            JsonValueKind.Number => decimal.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out number) && decimal.Truncate(number) == number,
            JsonValueKind.String => decimal.TryParse(v.GetValue<string>(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out number),
            _ => false,
        };
    }

    private static bool IsFloat(JsonNode? value) =>
        value is JsonValue v && v.GetValueKind() switch
        {
            JsonValueKind.Number => true,
            JsonValueKind.String => v.GetValue<string>() is "NaN" or "Infinity" or "-Infinity"
                || double.TryParse(v.GetValue<string>(), NumberStyles.Float, CultureInfo.InvariantCulture, out _),
            _ => false,
        };

    private static bool IsBase64(string text)
    {
        var standard = text.Replace('-', '+').Replace('_', '/');
        standard = standard.PadRight(standard.Length + ((4 - (standard.Length % 4)) % 4), '=');
        return Convert.TryFromBase64String(standard, new byte[standard.Length], out _);
    }

    private static string Kind(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => $"string {v.ToJsonString()}",
            JsonValueKind.Number => $"number {v.ToJsonString()}",
            JsonValueKind.True or JsonValueKind.False => $"bool {v.ToJsonString()}",
            var k => k.ToString(),
        },
        _ => node.GetType().Name,
    };

    private void Expect(bool ok, string path, string what, JsonNode? value)
    {
        if (!ok)
        {
            Error(path, $"expected {what}, got {Kind(value)}");
        }
    }

    private void Error(string path, string message) => _errors.Add($"{path}: {message}");

    [GeneratedRegex(@"^(-?[0-9]+(?:\.[0-9]{1,9})?)s$")]
    private static partial Regex DurationRegex();
}
