using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>
/// JSON Schema → Gemini's legacy <c>Schema</c> (an OpenAPI 3.0 subset that refuses unknown keywords,
/// providers.md §3.2): local <c>$ref</c>s are inlined (depth-limited, so cycles end), type arrays and
/// null members of <c>anyOf</c> become <c>nullable</c>, <c>oneOf</c> becomes <c>anyOf</c>, <c>const</c>
/// becomes a one-value <c>enum</c>, and every keyword outside the whitelist is dropped.
/// </summary>
internal static class GeminiSchema
{
    private const int MaxDepth = 24;

    /// <summary>Models that take real JSON Schema in <c>parametersJsonSchema</c> (Gemini 2.5 and later).</summary>
    public static bool TakesJsonSchema(string model) =>
        model.Contains("gemini-2.5", StringComparison.OrdinalIgnoreCase) || model.Contains("gemini-3", StringComparison.OrdinalIgnoreCase);

    public static void Write(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice schema, JsonSlice root, int depth = 0)
    {
        writer.WriteStartObject();
        if (schema.Kind(document) == JsonTokenType.StartObject && depth < MaxDepth)
        {
            WriteBody(writer, document, schema, root, depth);
        }

        writer.WriteEndObject();
    }

    private static void WriteBody(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice schema, JsonSlice root, int depth)
    {
        var reference = Find(document, schema, "$ref"u8);
        if (reference.IsPresent)
        {
            var target = Resolve(document, root, reference);
            if (target.Kind(document) == JsonTokenType.StartObject && depth + 1 < MaxDepth)
            {
                WriteBody(writer, document, target, root, depth + 1);
            }
            else
            {
                writer.WriteString("type"u8, "OBJECT"u8); // unresolvable or too deep: an open object
            }

            return;
        }

        var nullable = false;
        var reader = schema.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                var type = JsonRead.PropertyValue(ref reader, schema.Start);
                nullable |= WriteType(writer, document, type);
            }
            else if (reader.ValueTextEquals("properties"u8))
            {
                var properties = JsonRead.PropertyValue(ref reader, schema.Start);
                if (properties.Kind(document) != JsonTokenType.StartObject)
                {
                    continue;
                }

                writer.WriteStartObject("properties"u8);
                var inner = properties.Reader(document);
                inner.Read();
                while (JsonRead.NextProperty(ref inner))
                {
                    writer.WritePropertyName(inner.GetString()!);
                    Write(writer, document, JsonRead.PropertyValue(ref inner, properties.Start), root, depth + 1);
                }

                writer.WriteEndObject();
            }
            else if (reader.ValueTextEquals("items"u8))
            {
                writer.WritePropertyName("items"u8);
                Write(writer, document, JsonRead.PropertyValue(ref reader, schema.Start), root, depth + 1);
            }
            else if (reader.ValueTextEquals("anyOf"u8) || reader.ValueTextEquals("oneOf"u8))
            {
                nullable |= WriteAnyOf(writer, document, JsonRead.PropertyValue(ref reader, schema.Start), root, depth);
            }
            else if (reader.ValueTextEquals("const"u8))
            {
                // Gemini enums are strings with type STRING.
                var value = JsonRead.PropertyValue(ref reader, schema.Start);
                if (value.Kind(document) == JsonTokenType.String)
                {
                    if (!Find(document, schema, "type"u8).IsPresent)
                    {
                        writer.WriteString("type"u8, "STRING"u8);
                    }

                    writer.WriteStartArray("enum"u8);
                    writer.WriteRawValue(value.In(document), skipInputValidation: true);
                    writer.WriteEndArray();
                }
            }
            else if (reader.ValueTextEquals("enum"u8))
            {
                var values = JsonRead.PropertyValue(ref reader, schema.Start);
                if (values.Kind(document) != JsonTokenType.StartArray)
                {
                    continue;
                }

                writer.WriteStartArray("enum"u8);
                var members = values.Reader(document);
                members.Read();
                while (JsonRead.NextElement(ref members))
                {
                    if (members.TokenType == JsonTokenType.String)
                    {
                        writer.WriteRawValue(JsonRead.Value(ref members, values.Start).In(document), skipInputValidation: true);
                    }
                    else
                    {
                        nullable |= members.TokenType == JsonTokenType.Null;
                        members.Skip();
                    }
                }

                writer.WriteEndArray();
            }
            else if (reader.ValueTextEquals("nullable"u8))
            {
                reader.Read();
                nullable |= reader.TokenType == JsonTokenType.True;
            }
            else if (IsKept(ref reader))
            {
                var name = reader.ValueSpan;
                writer.WritePropertyName(name);
                writer.WriteRawValue(JsonRead.PropertyValue(ref reader, schema.Start).In(document), skipInputValidation: true);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader); // $schema, $defs, additionalProperties, allOf, not, … are refused by Gemini
            }
        }

        if (nullable)
        {
            writer.WriteBoolean("nullable"u8, true);
        }
    }

    private static bool IsKept(ref Utf8JsonReader reader) =>
        !reader.ValueIsEscaped && (reader.ValueTextEquals("format"u8) || reader.ValueTextEquals("title"u8)
        || reader.ValueTextEquals("description"u8) || reader.ValueTextEquals("required"u8)
        || reader.ValueTextEquals("minItems"u8) || reader.ValueTextEquals("maxItems"u8) || reader.ValueTextEquals("minProperties"u8)
        || reader.ValueTextEquals("maxProperties"u8) || reader.ValueTextEquals("minLength"u8) || reader.ValueTextEquals("maxLength"u8)
        || reader.ValueTextEquals("pattern"u8) || reader.ValueTextEquals("minimum"u8) || reader.ValueTextEquals("maximum"u8)
        || reader.ValueTextEquals("example"u8) || reader.ValueTextEquals("default"u8) || reader.ValueTextEquals("propertyOrdering"u8));

    /// <summary>Writes <c>type</c> (upper case); a type array keeps its first non-null type. True when null was allowed.</summary>
    private static bool WriteType(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice type)
    {
        var nullable = false;
        var chosen = default(JsonSlice);
        if (type.Kind(document) == JsonTokenType.String)
        {
            chosen = type;
        }
        else if (type.Kind(document) == JsonTokenType.StartArray)
        {
            var reader = type.Reader(document);
            reader.Read();
            while (JsonRead.NextElement(ref reader))
            {
                var member = JsonRead.Value(ref reader, type.Start);
                if (JsonRead.StringEquals(document, member, "null"u8))
                {
                    nullable = true;
                }
                else if (!chosen.IsPresent && member.Kind(document) == JsonTokenType.String)
                {
                    chosen = member;
                }
            }
        }

        if (chosen.IsPresent && !JsonRead.StringEquals(document, chosen, "null"u8))
        {
            using var name = new ScratchString(document, chosen);
            Span<byte> upper = stackalloc byte[Math.Min(name.Span.Length, 32)];
            for (var i = 0; i < upper.Length; i++)
            {
                upper[i] = (byte)char.ToUpperInvariant((char)name.Span[i]);
            }

            writer.WriteString("type"u8, upper);
        }
        else if (chosen.IsPresent)
        {
            nullable = true;
        }

        return nullable;
    }

    private static bool WriteAnyOf(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice members, JsonSlice root, int depth)
    {
        if (members.Kind(document) != JsonTokenType.StartArray)
        {
            return false;
        }

        var nullable = false;
        var started = false;
        var reader = members.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            var member = JsonRead.Value(ref reader, members.Start);
            var type = Find(document, member, "type"u8);
            if (JsonRead.StringEquals(document, type, "null"u8))
            {
                nullable = true;
                continue;
            }

            if (!started)
            {
                writer.WriteStartArray("anyOf"u8);
                started = true;
            }

            Write(writer, document, member, root, depth + 1);
        }

        if (started)
        {
            writer.WriteEndArray();
        }

        return nullable;
    }

    private static JsonSlice Find(ReadOnlySpan<byte> document, JsonSlice schema, ReadOnlySpan<byte> name)
    {
        if (schema.Kind(document) != JsonTokenType.StartObject)
        {
            return default;
        }

        var reader = schema.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals(name))
            {
                return JsonRead.PropertyValue(ref reader, schema.Start);
            }

            JsonRead.SkipPropertyValue(ref reader);
        }

        return default;
    }

    /// <summary>Resolves <c>#/$defs/Name</c> or <c>#/definitions/Name</c> against the root schema.</summary>
    private static JsonSlice Resolve(ReadOnlySpan<byte> document, JsonSlice root, JsonSlice reference)
    {
        using var pointer = new ScratchString(document, reference);
        var path = pointer.Span;
        ReadOnlySpan<byte> container;
        if (path.StartsWith("#/$defs/"u8))
        {
            container = "$defs"u8;
            path = path[8..];
        }
        else if (path.StartsWith("#/definitions/"u8))
        {
            container = "definitions"u8;
            path = path[14..];
        }
        else
        {
            return default;
        }

        return Find(document, Find(document, root, container), path);
    }
}
