// The two places a WCF client puts its relay token: the ServiceBusAuthorization
// HTTP header (OperationContextScope + HttpRequestMessageProperty) or the
// RelayAccessToken SOAP header Azure's WCF relay bindings send.
using System;
using System.ServiceModel;
using System.ServiceModel.Channels;
using System.Text;
using System.Xml;

namespace SoapRelay.Interop
{
    public enum TokenPlace { None, Http, Soap }

    public class RelayAccessTokenHeader : MessageHeader
    {
        const string ConnectNs = "http://schemas.microsoft.com/netservices/2009/05/servicebus/connect";
        const string WsseNs = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
        const string WsuNs = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
        const string SwtValueType = "http://schemas.xmlsoap.org/ws/2009/11/swt-token-profile-1.0";
        const string Base64Binary = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
        readonly string token;

        public RelayAccessTokenHeader(string token) { this.token = token; }
        public override string Name { get { return "RelayAccessToken"; } }
        public override string Namespace { get { return ConnectNs; } }

        protected override void OnWriteHeaderContents(XmlDictionaryWriter writer, MessageVersion version)
        {
            writer.WriteStartElement("wsse", "BinarySecurityToken", WsseNs);
            writer.WriteAttributeString("wsu", "Id", WsuNs, "uuid:" + Guid.NewGuid());
            writer.WriteAttributeString("ValueType", SwtValueType);
            writer.WriteAttributeString("EncodingType", Base64Binary);
            writer.WriteString(Convert.ToBase64String(Encoding.UTF8.GetBytes(token)));
            writer.WriteEndElement();
        }
    }

    public static class RelayToken
    {
        // Adds the token to the next call made inside the current OperationContextScope.
        public static void Attach(TokenPlace place, string token)
        {
            if (place == TokenPlace.Http)
            {
                var http = new HttpRequestMessageProperty();
                http.Headers["ServiceBusAuthorization"] = token;
                OperationContext.Current.OutgoingMessageProperties[HttpRequestMessageProperty.Name] = http;
            }
            else if (place == TokenPlace.Soap)
            {
                OperationContext.Current.OutgoingMessageHeaders.Add(new RelayAccessTokenHeader(token));
            }
        }
    }
}
