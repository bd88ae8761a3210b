using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// The few protoc-gen-validate rules the config walker enforces, read from the raw option bytes (C# keeps the
/// unknown extension fields): required messages/Any/Duration, required oneofs, string min_len, repeated min_items.
/// Envoy validates these at load time; the rest of PGV is not emulated.
/// </summary>
internal sealed record PgvRules(bool Required, ulong MinLen, ulong MinItems)
{
    private const int ValidateExtension = 1071; // validate.rules / validate.required, on Field/OneofOptions
    private const int FieldRulesString = 14;
    private const int FieldRulesMessage = 17;
    private const int FieldRulesRepeated = 18;
    private const int FieldRulesAny = 20;
    private const int FieldRulesDuration = 21;

    public static readonly PgvRules None = new(false, 0, 0);

    public static PgvRules For(FieldDescriptorProto field)
    {
        if (field.Options is null || FindLengthDelimited(field.Options.ToByteString(), ValidateExtension) is not { } fieldRules)
        {
            return None;
        }

        var required = ReadBool(FindLengthDelimited(fieldRules, FieldRulesMessage), 2)
            || ReadBool(FindLengthDelimited(fieldRules, FieldRulesAny), 1)
            || ReadBool(FindLengthDelimited(fieldRules, FieldRulesDuration), 1);
        var minLen = ReadVarint(FindLengthDelimited(fieldRules, FieldRulesString), 2);
        var minItems = ReadVarint(FindLengthDelimited(fieldRules, FieldRulesRepeated), 1);
        return new PgvRules(required, minLen, minItems);
    }

    public static bool OneofRequired(OneofDescriptorProto oneof) =>
        oneof.Options is not null && ReadBool(oneof.Options.ToByteString(), ValidateExtension);

    private static ByteString? FindLengthDelimited(ByteString? bytes, int fieldNumber)
    {
        if (bytes is null)
        {
            return null;
        }

        var input = new CodedInputStream(bytes.ToByteArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == fieldNumber && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                return input.ReadBytes();
            }

            input.SkipLastField();
        }

        return null;
    }

    private static bool ReadBool(ByteString? bytes, int fieldNumber) => ReadVarint(bytes, fieldNumber) != 0;

    private static ulong ReadVarint(ByteString? bytes, int fieldNumber)
    {
        if (bytes is null)
        {
            return 0;
        }

        var input = new CodedInputStream(bytes.ToByteArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == fieldNumber && WireFormat.GetTagWireType(tag) == WireFormat.WireType.Varint)
            {
                return input.ReadUInt64();
            }

            input.SkipLastField();
        }

        return 0;
    }
}
